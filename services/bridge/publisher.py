"""Tail the store and publish one bus event per committed write.

With the Kubernetes backend this is the only publisher. With the embedded KV backend the
writer announces its own commits (lower latency) and this tail is the safety net for a
writer that died between commit and publish; both use the same event id, so the bus
keeps one. One watch per kind resumes from a checkpoint kept in JetStream KV. Checkpoints are saved
every ``checkpoint_interval`` rather than per event; after a crash the bridge replays from
the last checkpoint and the bus drops the replays by message id, so each write still
yields exactly one event. A checkpoint the store no longer keeps history for (``Gone``)
is caught up from a list: one event per object changed since, at its latest version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import BucketNotFoundError, KeyNotFoundError

from shared.bus import Bus, event_for
from shared.models import ALL_KINDS, Resource
from shared.store import Gone, Store
from shared.tasks import cancel_all, raise_if_cancelling

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
        self.published = 0
        self._kv = None
        self._tasks: list[asyncio.Task[None]] = []
        self._positions: dict[str, str] = {}
        self._saved: dict[str, str] = {}

    async def start(self) -> None:
        js = self.nc.jetstream()
        try:
            self._kv = await js.key_value(self.checkpoint_bucket)
        except BucketNotFoundError:
            self._kv = await js.create_key_value(
                api.KeyValueConfig(bucket=self.checkpoint_bucket, history=1)
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
                async for ev in self.store.watch(kind, resource_version=rv):
                    await self.bus.publish(event_for(ev.type, ev.object))
                    self.published += 1
                    rv = ev.object.metadata.resource_version or rv
                    self._positions[kind.KIND] = rv
                await asyncio.sleep(RETRY_DELAY)  # the watch ended (server closed it)
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
                log.warning("bridge: checkpoint failed: %s", e)


def _version(rv: str | None) -> int:
    """A resourceVersion as a number (both backends use integers; anything else is 0)."""
    try:
        return int(rv or 0)
    except ValueError:
        return 0
