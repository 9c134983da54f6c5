"""An in-process system of record for tests: KV store + bus + bridge on a real nats-server.

Each test gets its own prefix, so buckets, streams and subjects never collide.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nats.aio.client import Client as NATS

from services.bridge.gc import GarbageCollector, store_for_sweeps
from services.bridge.publisher import EventPublisher
from services.bridge.sweep import AnnouncedSweep
from shared.bus import Bus
from shared.config import Settings
from shared.store.kv import KVStore


@dataclass
class Harness:
    nc: NATS
    settings: Settings
    store: KVStore
    bus: Bus
    publisher: AnnouncedSweep | EventPublisher
    gc: GarbageCollector


@contextlib.asynccontextmanager
async def system(nc: NATS, prefix: str, *, nats_url: str = "",
                 sweep: bool = True) -> AsyncIterator[Harness]:
    """Store, bus, bridge and GC as the embedded default runs them (``sweep`` False: the
    bridge tails the store and publishes every write at once, as on Kubernetes where it is
    the only publisher)."""
    settings = Settings(nats_url=nats_url, prefix=prefix, lease_seconds=2.0)
    bus = Bus(nc, prefix=prefix, service="test")
    await bus.start()
    store = KVStore(nc, bucket=settings.objects_bucket, on_commit=bus.announce)
    await store.start()
    publisher = bridge(store, bus, nc, prefix, sweep=sweep)
    await publisher.start()
    gc = GarbageCollector(await store_for_sweeps(store), bus)
    await gc.start()
    try:
        yield Harness(nc, settings, store, bus, publisher, gc)
    finally:
        await gc.stop()
        await publisher.stop()
        await bus.stop()


def bridge(store: KVStore, bus: Bus, nc: NATS, prefix: str, *, sweep: bool,
           ) -> AnnouncedSweep | EventPublisher:
    """The bridge's publisher as the bridge service makes it (checkpoints under the
    prefix); ``sweep``: the embedded store's, else Kubernetes'."""
    if sweep:
        return AnnouncedSweep(store, bus, nc, checkpoint_bucket=f"{prefix}-bridge")
    return EventPublisher(store, bus, nc, checkpoint_bucket=f"{prefix}-bridge")
