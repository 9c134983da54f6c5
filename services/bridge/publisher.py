"""Tail the store and publish one bus event per committed write.

The publisher where writers do not announce their own writes (the Kubernetes backend: the
bridge is the only publisher); where they do, ``services.bridge.sweep`` covers the writers
that died between commit and announce instead. One watch per kind resumes from a
checkpoint kept in JetStream KV. Checkpoints are saved every ``checkpoint_interval`` rather
than per event; after a crash the bridge replays from the last checkpoint and the bus drops
the replays by message id, so each write still yields exactly one event. A checkpoint the
store no longer keeps history for (``Gone``) is caught up from a list: one event per object
changed since, at its latest version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable

from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import KeyNotFoundError

from shared import metrics
from shared.bus import Bus, event_for
from shared.models import ALL_KINDS, Resource
from shared.natsutil import open_bucket
from shared.store import Gone, Store, WatchEvent
from shared.tasks import cancel_all, ignore_outcome, raise_if_cancelling

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = 0.5
RETRY_DELAY = 1.0


class EventPublisher:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        nc: NATS,
        *,
        kinds: tuple[type[Resource], ...] = ALL_KINDS,
        checkpoint_bucket: str = "ccloud-bridge",
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
    ) -> None:
        self.store = store
        self.bus = bus
        self.nc = nc
        self.kinds = kinds
        self.checkpoint_bucket = checkpoint_bucket
        self.checkpoint_interval = checkpoint_interval
        self.published = 0  # events acknowledged by the stream (duplicates included)
        self.resends = 0  # tails restarted after a failed ack
        self._kv = None
        self._tasks: list[asyncio.Task[None]] = []
        self._positions: dict[str, str] = {}
        self._saved: dict[str, str] = {}

    async def start(self) -> None:
        self._kv = await open_bucket(
            self.nc.jetstream(), api.KeyValueConfig(bucket=self.checkpoint_bucket, history=1)
        )
        # Fix every resume point before returning, so no write after start() is missed.
        for kind in self.kinds:
            rv = await self._load(kind.KIND) or await self._now(kind)
            self._positions[kind.KIND] = rv
        await self._save_checkpoints()
        self._tasks = [
            asyncio.create_task(self._follow(k, self._positions[k.KIND]), name=f"bridge:{k.KIND}")
            for k in self.kinds
        ]
        self._tasks.append(asyncio.create_task(self._checkpoint_loop()))

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self._save_checkpoints()

    def position(self, kind: str) -> str | None:
        """The resume point of ``kind``: every write up to it has an acknowledged event."""
        return self._positions.get(kind)

    async def _load(self, kind: str) -> str | None:
        assert self._kv is not None
        try:
            entry = await self._kv.get(kind)
        except KeyNotFoundError:
            return None
        return entry.value.decode() if entry.value else None

    async def _now(self, kind: type[Resource]) -> str:
        return (await self.store.list(kind, limit=1)).resource_version

    async def _follow(self, kind: type[Resource], rv: str | None) -> None:
        while True:
            try:
                if rv is None:
                    rv = await self._now(kind)
                    self._positions[kind.KIND] = rv
                pipe = _Pipeline(rv, lambda at, k=kind.KIND: self._acked(k, at))
                try:
                    await self._tail(kind, pipe)
                finally:
                    rv = pipe.close()
                if pipe.failure is not None:
                    self.resends += 1
                    metrics.BRIDGE_RESENDS.labels(kind.KIND).inc()
                    log.warning("bridge %s: publishing failed: %r; resending from %s",
                                kind.KIND, pipe.failure, rv)
                await asyncio.sleep(RETRY_DELAY)  # the watch ended, or an event was not acked
            except asyncio.CancelledError:
                raise
            except Gone:
                log.warning("bridge %s: resume point %s expired; publishing the current "
                            "state of what changed since", kind.KIND, rv)
                try:
                    rv = await self._catch_up(kind, rv)
                except Exception as e:  # the next round meets Gone again and retries
                    raise_if_cancelling()
                    log.warning("bridge %s: catching up failed: %s; retrying", kind.KIND, e)
                    await asyncio.sleep(RETRY_DELAY)
                    continue
                self._positions[kind.KIND] = rv
            except Exception as e:
                raise_if_cancelling()
                log.warning("bridge %s: watch failed: %s; retrying", kind.KIND, e)
                await asyncio.sleep(RETRY_DELAY)

    async def _tail(self, kind: type[Resource], pipe: _Pipeline) -> None:
        """Send an event per write without waiting for each ack, until the watch ends or an
        ack fails (then the caller resends from the last event acked in order)."""
        watch = self.store.watch(kind, resource_version=pipe.acked)
        sending = asyncio.ensure_future(self._send_all(watch, pipe))
        failed = asyncio.ensure_future(pipe.failed.wait())
        try:
            await asyncio.wait({sending, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_all([sending, failed])
        if sending.done() and not sending.cancelled():
            sending.result()  # Gone, or the watch's own failure

    async def _send_all(self, watch: AsyncIterator[WatchEvent[Resource]], pipe: _Pipeline) -> None:
        async for ev in watch:
            await self._send(ev, pipe)

    async def _send(self, ev: WatchEvent[Resource], pipe: _Pipeline) -> None:
        pipe.add(ev.object.metadata.resource_version or pipe.acked,
                 await self.bus.send(event_for(ev.type, ev.object)))

    def _acked(self, kind: str, rv: str) -> None:
        self.published += 1
        self._positions[kind] = rv

    async def _catch_up(self, kind: type[Resource], expired: str | None) -> str:
        """After an expired resume point: one event per object written since it, carrying
        its latest version (intermediate versions are gone; a delete in between cannot be
        told apart from an object that never existed). Returns the list's version."""
        page = await self.store.list(kind)
        after = _version(expired)
        for obj in page.items:
            if _version(obj.metadata.resource_version) > after:
                await self.bus.publish(event_for("MODIFIED", obj))
                self.published += 1
        return page.resource_version

    async def _save_checkpoints(self) -> None:
        assert self._kv is not None
        for kind, rv in list(self._positions.items()):
            if self._saved.get(kind) != rv:
                await self._kv.put(kind, rv.encode())
                self._saved[kind] = rv

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self.checkpoint_interval)
            try:
                await self._save_checkpoints()
            except Exception as e:
                raise_if_cancelling()
                log.warning("bridge: checkpoint failed: %s", e)


class _Pipeline:
    """Events sent and not yet acknowledged, in store order. The resume point moves only
    over the acknowledged prefix, so a checkpoint never covers an event the stream may not
    hold; the first failed ack stops the pipeline and the tail resends from that point."""

    def __init__(self, acked: str, on_ack: Callable[[str], None]) -> None:
        self.acked = acked
        self.failure: BaseException | None = None
        self.failed = asyncio.Event()
        self._on_ack = on_ack
        self._inflight: deque[tuple[str, asyncio.Future[bool]]] = deque()

    def add(self, rv: str, sent: asyncio.Future[bool]) -> None:
        self._inflight.append((rv, sent))
        sent.add_done_callback(self._settle)

    def _settle(self, _: asyncio.Future[bool]) -> None:
        while self._inflight and self._inflight[0][1].done():
            rv, sent = self._inflight.popleft()
            error = (TimeoutError("no ack from the stream") if sent.cancelled()
                     else sent.exception())
            if error is not None:
                self.failure = error
                self.close()
                return
            self.acked = rv
            self._on_ack(rv)

    def close(self) -> str:
        """Stop following acks (later ones are of events that will be resent); returns
        the resume point."""
        for _, sent in self._inflight:
            sent.remove_done_callback(self._settle)
            sent.add_done_callback(ignore_outcome)  # those events are resent
        self._inflight.clear()
        self.failed.set()
        return self.acked


def _version(rv: str | None) -> int:
    """A resourceVersion as a number (both backends use integers; anything else is 0)."""
    try:
        return int(rv or 0)
    except ValueError:
        return 0
