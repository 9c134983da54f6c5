"""Simulated agents: one process that runs the real LCM agent loop for many nodes.

``python -m bench.fleet --endpoint URL --roots DIR [--poll-interval S]`` (store and bus
from the shared ``CCLOUD_*`` settings, the agent secret from ``CCLOUD_LCM_SECRET``).

Nodes of the simulated provider are not real hosts, so nothing would run an agent on
them. This process plays every node's agent: a ``shared.runtime.Controller`` on Machine
starts an ``Agent`` (``services.lcm.agent.runner``, the same loop a node runs) as soon as
the provider has given the Machine its providerID and addresses, and stops it when the
Machine goes away. Items are applied by the node-root executor under ``--roots`` (files a
test can read and steer), or with ``--in-memory`` only remembered (``MemoryExecutor``) - the
agents' journals stay under ``--roots`` either way; all
agents share one HTTP session for their calls (``--connections``) and an unpooled one for
their long-polls. Killing this process is an agent crash on every node: a
restart resumes from each node's journal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import aiohttp

from services.lcm.agent.client import REQUEST_TIMEOUT, AgentClient
from services.lcm.agent.executor import Executor, NodeRootExecutor
from services.lcm.agent.runner import Agent
from services.lcm.tokens import machine_token
from shared.bus import Bus
from shared.config import Settings
from shared.models import Cluster, Machine, StateItem
from shared.runtime import Controller, Request, Result
from shared.service import connect, make_store
from shared.store import NotFound, Store

log = logging.getLogger("bench.fleet")


class MemoryExecutor:
    """A simulated node that only remembers what it applied: ``bench.scale`` measures the
    region, and ten thousand nodes' file writes on one event loop (a fifth of this
    process's time, and each write holding up every other node's calls) measured this
    host's disk instead. Nothing steers it: items succeed, cordons too."""

    def __init__(self, hostname: str, ip: str) -> None:
        self._facts = (hostname, ip)
        self.applied: dict[str, str] = {}  # item -> "<version> <hash>"
        self.cordoned = False

    def facts(self) -> tuple[str, str]:
        return self._facts

    async def apply(self, item: StateItem, hash_: str, *,
                    secrets: Mapping[str, str] | None = None) -> None:
        self.applied[item.name] = f"{item.version} {hash_}"

    async def cordon(self, on: bool) -> None:
        self.cordoned = on


class Fleet:
    """The Machine reconciler: one running agent per provisioned Machine."""

    def __init__(self, store: Store, session: aiohttp.ClientSession,
                 poll_session: aiohttp.ClientSession, *, endpoint: str, secret: bytes,
                 roots: Path, poll_interval: float, in_memory: bool = False) -> None:
        self.store = store
        self.session = session
        self.poll_session = poll_session
        self.endpoint = endpoint
        self.secret = secret
        self.roots = roots
        self.poll_interval = poll_interval
        self.in_memory = in_memory
        self.agents: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        # How an agent that died asks for its Machine to be reconciled (and so restarted).
        self.requeue: Callable[[Request, float], None] | None = None

    async def reconcile(self, req: Request) -> Result | None:
        key = str(req)
        try:
            m = await self.store.get(Machine, req.name, req.namespace)
        except NotFound:
            await self.stop_agent(key)
            return None
        if m.spec.simulated is None or not m.metadata.uid:
            return None
        if not (m.status.provider_id and m.status.addresses):
            return None
        running = self.agents.get(key)
        if running and not running[1].done():
            return None
        self.start_agent(req, m)
        return None

    def start_agent(self, req: Request, m: Machine) -> None:
        assert m.metadata.uid and m.metadata.namespace
        key = str(req)
        root = self.roots / m.metadata.namespace / m.metadata.name
        root.mkdir(parents=True, exist_ok=True)
        client = AgentClient(self.endpoint, m.metadata.namespace, m.metadata.name,
                             machine_token(self.secret, m.metadata.uid),
                             session=self.session, poll_session=self.poll_session)
        executor: Executor = (
            MemoryExecutor(m.metadata.name, m.status.addresses[0]) if self.in_memory
            else NodeRootExecutor(root, hostname=m.metadata.name, ip=m.status.addresses[0]))
        stop = asyncio.Event()

        async def run() -> None:
            await client.start()
            try:
                # The nodes are directories of this host: a journal outlives the agent's
                # crash (this process killed) in the page cache, no fsync needed.
                await Agent(client, executor, root, poll_interval=self.poll_interval,
                            sync_journal=False).run(stop)
            except Exception as e:  # an agent that dies is restarted, as a node's would be
                log.warning("agent %s stopped: %s", key, e)
                if self.requeue is not None and not stop.is_set():
                    self.requeue(req, 1.0)

        self.agents[key] = (stop, asyncio.create_task(run(), name=f"agent:{key}"))

    async def stop_agent(self, key: str) -> None:
        entry = self.agents.pop(key, None)
        if entry:
            entry[0].set()
            with contextlib.suppress(asyncio.CancelledError):
                await entry[1]

    async def stop(self) -> None:
        for key in list(self.agents):
            await self.stop_agent(key)


async def serve(args: argparse.Namespace) -> None:
    settings = Settings.from_env()
    secret = os.environ.get("CCLOUD_LCM_SECRET", "").encode()
    if not secret:
        raise SystemExit("CCLOUD_LCM_SECRET is required (the LCM service's agent secret)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    nc = await connect(settings, "fleet")
    bus = Bus(nc, prefix=settings.prefix, service="fleet")
    await bus.start()
    store = await make_store(settings, nc, None)
    # The controller's pause check reads each Machine's Cluster: from this process's cache
    # once it follows Clusters (one message per Cluster write), not a store round trip per
    # reconcile. A real node's agent runs no controller at all.
    await store.list_all(Cluster)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.connections),
                                    timeout=timeout)
    # held details GETs: one connection each (as every real node has its own), unpooled so
    # they never hold up reports and heartbeats
    poll_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         timeout=timeout)
    fleet = Fleet(store, session, poll_session, endpoint=args.endpoint, secret=secret,
                  roots=Path(args.roots), poll_interval=args.poll_interval,
                  in_memory=args.in_memory)
    # Machine events start agents and a dead agent requeues its Machine: no periodic resync,
    # which at 10,000 machines was a store read per machine every few seconds.
    ctrl = Controller("bench-fleet", Machine, fleet, store, bus, region=settings.region,
                      workers=4, resync_period=None)
    fleet.requeue = lambda req, delay: ctrl.queue.add_after(req, delay)
    await ctrl.start()
    try:
        await stop.wait()
    finally:
        await ctrl.stop()
        await fleet.stop()
        await session.close()
        await poll_session.close()
        await bus.stop()
        await store.close()
        with contextlib.suppress(Exception):
            await nc.drain()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", required=True, help="the LCM agent endpoint URL")
    p.add_argument("--roots", required=True, help="directory for the node roots")
    p.add_argument("--poll-interval", type=float, default=1.0)
    # A real node has a connection of its own: a small shared pool makes its own queue, and
    # a call's timeout counts the wait for a pooled connection (at 10,000 agents and 64
    # connections, agents timed out here while the endpoint answered in 0.1 s).
    p.add_argument("--connections", type=int, default=256)
    p.add_argument("--in-memory", action="store_true",
                   help="nodes remember the items they apply instead of writing them under "
                        "their root (the journal is written either way)")
    args = p.parse_args(argv)
    logging.basicConfig(level=os.environ.get("CCLOUD_LOG_LEVEL", "WARNING").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
