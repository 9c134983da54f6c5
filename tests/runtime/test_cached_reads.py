"""A reconcile woken by a write reads its object from the informer cache once that cache
has applied the write: no store round trip, never older than what woke it."""

from __future__ import annotations

import msgspec

from shared import metrics
from shared.models import ObjectMeta, Region, RegionSpec
from shared.runtime import Controller, Request
from shared.store.kv import KVStore
from tests.harness import system
from tests.waiting import eventually


def region(name: str, **labels: str) -> Region:
    return Region(metadata=ObjectMeta(name=name, labels=labels),
                  spec=RegionSpec(providers=["simulated"]))


def relabel(obj: Region, **labels: str) -> Region:
    return msgspec.structs.replace(
        obj, metadata=msgspec.structs.replace(obj.metadata, labels=labels))


def cached_reads(controller: str, outcome: str) -> float:
    return metrics.CACHED_READS.labels(controller, outcome)._value.get()


async def test_store_cache_answers_only_once_it_has_applied_the_revision(nc, prefix):
    async with system(nc, prefix) as h:
        store = KVStore(nc, bucket=h.settings.objects_bucket)  # no informer started yet
        await store.start()
        first = await store.create(region("r1", v="1"))
        rv = int(first.metadata.resource_version or 0)
        # No informer for the kind yet: nothing cached, the caller asks the store.
        assert store.cached(Region, "r1", None, at_least=rv) is None
        await store.list_all(Region)  # starts the kind's informer, fresh up to now
        got = store.cached(Region, "r1", None, at_least=rv)
        assert got == first
        # A private copy: changing it leaves the cache (and the next reader) alone.
        assert got is not None
        got.metadata.labels["v"] = "mutated"
        assert store.cached(Region, "r1", None, at_least=rv) == first
        # shared=True: the cached object itself, for a caller that only looks.
        peeked = store.cached(Region, "r1", None, at_least=rv, shared=True)
        assert peeked is store.cached(Region, "r1", None, at_least=0, shared=True)
        assert peeked == first and peeked is not got
        # A revision the cache has not applied yet is not answered from it.
        assert store.cached(Region, "r1", None, at_least=rv + 1000) is None
        second = await store.update(relabel(first, v="2"))
        rv2 = int(second.metadata.resource_version or 0)
        await eventually(lambda: store.cached(Region, "r1", None, at_least=rv2),
                         what="the informer applying the update")
        assert store.cached(Region, "r1", None, at_least=rv2) == second
        await store.delete(Region, "r1")
        await store.list_all(Region)  # fresh: the delete is applied
        assert store.cached(Region, "r1", None, at_least=rv2) is None
        await store.close()


class LastSeen:
    """Records the label each reconcile read, and scribbles on the object it was given."""

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self.seen: list[str] = []

    async def reconcile(self, req: Request) -> None:
        obj = await self.store.get(Region, req.name, req.namespace)
        self.seen.append(obj.metadata.labels.get("v", ""))
        obj.metadata.labels["v"] = "scribbled"  # a reconcile's own copy, not the cache's


async def test_reconciles_woken_by_writes_read_the_cache_and_see_the_last_write(nc, prefix):
    async with system(nc, prefix) as h:
        store = h.store
        assert isinstance(store, KVStore)
        obj = await store.create(region("r1", v="0"))
        rec = LastSeen(store)
        name = f"cached-{prefix}"
        ctl = Controller(name=name, kind=Region, reconciler=rec, store=store, bus=h.bus,
                         resync_period=None, record_events=False)
        await ctl.start()
        try:
            await eventually(lambda: rec.seen, what="the resync's reconcile")
            for i in range(1, 21):
                obj = await store.update(relabel(obj, v=str(i)))
            # Level-triggered: the reconcile after the last write sees the last write.
            await eventually(lambda: rec.seen[-1] == "20", what="a reconcile of v=20")
            assert cached_reads(name, "hit") >= 1, "no reconcile read from the cache"
            # What a reconcile did to its object did not reach the cache or the store.
            assert "scribbled" not in rec.seen
            assert (await store.get(Region, "r1")).metadata.labels == {"v": "20"}
            # Reads never went back in time past the write that woke them.
            assert [int(v) for v in rec.seen] == sorted(int(v) for v in rec.seen)
        finally:
            await ctl.stop()
