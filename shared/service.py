"""Process skeleton every service runs in: connections, probes, leader gating, shutdown.

A service builds its components from a ``Runtime`` (connected NATS, started store and bus,
health server). ``always`` components run in every replica (e.g. an HTTP API); ``leader``
components (controllers) run only while this replica holds the service's lease, and stop
the moment it is lost. SIGINT/SIGTERM stop everything in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import nats
from nats.aio.client import Client as NATS

from shared.bus import Bus
from shared.config import Settings
from shared.health import HealthServer
from shared.runtime.leader import LeaderElector
from shared.store import Store
from shared.tasks import cancel_all, raise_if_cancelling

log = logging.getLogger(__name__)

START_RETRY = 1.0  # first wait before starting a service's components again
START_RETRY_MAX = 30.0


class Component(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass
class Parts:
    always: list[Component] = field(default_factory=list)
    leader: list[Component] = field(default_factory=list)


@dataclass
class Runtime:
    name: str
    settings: Settings
    nc: NATS
    store: Store
    bus: Bus
    health: HealthServer


Build = Callable[[Runtime], Awaitable[Parts]]


async def make_store(settings: Settings, nc: NATS, bus: Bus | None = None) -> Store:
    if settings.store == "kube":
        from shared.store.kube import KubeStore

        store: Store = KubeStore(kubeconfig=settings.kubeconfig or None)  # type: ignore[call-arg]
    else:
        from shared.store.kv import KVStore

        store = KVStore(
            nc, bucket=settings.objects_bucket, on_commit=bus.announce if bus else None
        )
    await store.start()
    return store


async def connect(settings: Settings, name: str) -> NATS:
    async def on_error(e: Exception) -> None:
        log.warning("%s: nats: %s", name, e)

    return await nats.connect(
        settings.nats_url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=on_error,
    )


async def serve(
    name: str, build: Build, settings: Settings | None = None, *, stop: asyncio.Event | None = None
) -> None:
    settings = settings or Settings.from_env()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    nc = await connect(settings, name)
    bus = Bus(nc, prefix=settings.prefix, service=name)
    await bus.start()
    store = await make_store(settings, nc, bus)
    health = HealthServer(host=settings.health_host, port=settings.health_port)
    health.add_check("nats", lambda: None if nc.is_connected else "nats disconnected")
    await health.start()
    log.info("%s: health and metrics on http://%s:%d", name, health.host, health.port)
    rt = Runtime(name, settings, nc, store, bus, health)
    parts = await build(rt)
    started: list[Component] = []
    try:
        for c in parts.always:
            await c.start()
            started.append(c)
        if parts.leader:
            await _lead(rt, parts.leader, stop)
        else:
            await stop.wait()
    finally:
        await _stop_all(started)
        await bus.stop()
        await store.close()
        await health.stop()
        with contextlib.suppress(Exception):
            await nc.drain()


async def _lead(rt: Runtime, components: list[Component], stop: asyncio.Event) -> None:
    """Run ``components`` while holding the lease; stand by otherwise."""
    if not rt.settings.leader_election:
        await _run_until(components, stop, None)
        return
    elector = LeaderElector(
        rt.nc,
        lease=f"{rt.name}-{rt.settings.region}",
        bucket=rt.settings.leases_bucket,
        lease_seconds=rt.settings.lease_seconds,
    )
    rt.health.add_check("leader", lambda: None)
    while not stop.is_set():
        acquire = asyncio.create_task(elector.acquire())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({acquire, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            await cancel_all([acquire])
            return
        stopper.cancel()
        renew = asyncio.create_task(elector.renew_forever())
        try:
            await _run_until(components, stop, elector.lost)
        finally:
            await cancel_all([renew])
            if stop.is_set():
                await elector.release()


async def _run_until(
    components: list[Component], stop: asyncio.Event, lost: asyncio.Event | None
) -> None:
    started = await _start_all(components, stop, lost)
    try:
        if started is None:
            return
        waits = [asyncio.create_task(stop.wait())]
        if lost is not None:
            waits.append(asyncio.create_task(lost.wait()))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
    finally:
        await _stop_all(started or [])


async def _start_all(
    components: list[Component], stop: asyncio.Event, lost: asyncio.Event | None
) -> list[Component] | None:
    """Start ``components`` in order; a start that fails (NATS restarting, a cache that
    cannot catch up yet) stops what had started and tries again after a backoff, as a
    restarted pod would, rather than ending the service. None: stopped meanwhile."""
    delay = START_RETRY
    while True:
        started: list[Component] = []
        try:
            for c in components:
                started.append(c)  # a half-started component is stopped too
                await c.start()
            return started
        except Exception as e:
            raise_if_cancelling()
            log.warning("starting %s failed: %s; starting again in %.0fs",
                        type(started[-1]).__name__, str(e) or type(e).__name__, delay)
        await _stop_all(started)
        ended = [asyncio.create_task(stop.wait())]
        if lost is not None:
            ended.append(asyncio.create_task(lost.wait()))
        await asyncio.wait(ended, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        for w in ended:
            w.cancel()
        if stop.is_set() or (lost is not None and lost.is_set()):
            return None
        delay = min(delay * 2, START_RETRY_MAX)


async def _stop_all(started: list[Component]) -> None:
    for c in reversed(started):
        with contextlib.suppress(Exception):
            await c.stop()


def main(name: str, build: Build) -> None:
    """Entry point helper for ``python -m services.<name>``."""
    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(name, build, settings))
