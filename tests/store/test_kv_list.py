"""A KV list is a complete cut even while objects are being rewritten under it.

Regression: last-per-subject delivery (and nats-py's KV watch built on it) could end a
snapshot before a key being rewritten arrived, so a list now and then missed an object;
controllers then acted on a partial view (a rollout saw fewer machines than exist).
"""

from __future__ import annotations

import asyncio

import pytest

from shared.models import Machine, MachineSpec, ObjectMeta
from shared.store.kv import KVStore


@pytest.mark.parametrize(("informers", "follow"), [(True, True), (True, False), (False, True)],
                         ids=["informer", "on-read", "snapshot"])
async def test_list_never_misses_an_object_being_rewritten(nc, prefix, informers, follow):
    store = KVStore(nc, bucket=prefix, informers=informers, follow=follow)
    await store.start()
    for i in range(8):
        await store.create(Machine(metadata=ObjectMeta(name=f"m{i}", namespace="ns"),
                                   spec=MachineSpec(cluster="c", region="r")))
    await store.delete(Machine, "m7", "ns")
    stop = asyncio.Event()

    async def rewrite() -> None:
        while not stop.is_set():
            m = await store.get(Machine, "m3", "ns")
            m.status.phase = str(int(m.status.phase or 0) + 1)
            await store.update_status(m)

    writers = [asyncio.create_task(rewrite()) for _ in range(2)]
    try:
        seen = [sorted(m.metadata.name for m in (await store.list(Machine, "ns")).items)
                for _ in range(300)]
    finally:
        stop.set()
        await asyncio.gather(*writers, return_exceptions=True)
    expected = [f"m{i}" for i in range(7)]
    bad = [s for s in seen if s != expected]
    assert not bad, f"{len(bad)} of {len(seen)} lists were partial, e.g. {bad[0]}"
    assert (await store.list(Machine, "elsewhere")).items == []
    info = await nc.jetstream().stream_info(f"KV_{prefix}")
    # One long-lived consumer per listed kind with informers that follow; none otherwise.
    assert info.state.consumer_count == (1 if informers and follow else 0), \
        "lists leave no consumers"
    await store.close()


@pytest.mark.parametrize("follow", [True, False], ids=["informer", "on-read"])
async def test_a_list_sees_every_write_finished_before_it(nats_server, nc, prefix, follow):
    """Another process's write is in my next list, even when the bucket's head has moved
    on with writes of other kinds (the informer must prove it is caught up, not assume)."""
    import nats

    from shared.models import Cluster, ClusterSpec

    other = await nats.connect(nats_server.url)
    writer = KVStore(other, bucket=prefix)
    reader = KVStore(nc, bucket=prefix, follow=follow)
    await writer.start()
    await reader.start()
    try:
        assert (await reader.list(Machine, "ns")).items == []  # the informer is running
        for i in range(60):
            await writer.create(Machine(metadata=ObjectMeta(name=f"m{i}", namespace="ns"),
                                        spec=MachineSpec(cluster="c", region="r")))
            for j in range(i % 3):  # move the head past the machine with another kind
                await writer.create(Cluster(metadata=ObjectMeta(name=f"c{i}-{j}", namespace="ns"),
                                            spec=ClusterSpec(region="r", provider="simulated",
                                                             release="x")))
            names = {m.metadata.name for m in (await reader.list(Machine, "ns")).items}
            assert f"m{i}" in names and len(names) == i + 1
            if i % 10 == 0:
                await writer.delete(Machine, f"m{i}", "ns")
                names = {m.metadata.name for m in (await reader.list(Machine, "ns")).items}
                assert f"m{i}" not in names
                await writer.create(Machine(metadata=ObjectMeta(name=f"m{i}", namespace="ns"),
                                            spec=MachineSpec(cluster="c", region="r")))
        listed = (await reader.list(Machine, "ns")).items[0]
        listed.status.phase = "Mutated"  # what a reader does to its copy stays its own
        again = await reader.get(Machine, listed.metadata.name, "ns")
        assert again.status.phase != "Mutated"
        assert (await reader.list(Machine, "ns")).items[0].status.phase != "Mutated"
    finally:
        await reader.close()
        await writer.close()
        await other.close()


async def test_writes_through_a_listed_copy_keep_their_errors(nats_server, nc, prefix):
    """A write may take the stored version from the informer instead of reading it: a
    stale copy must still conflict, and a copy of a deleted object is NotFound."""
    import nats

    from shared.store.errors import Conflict, NotFound

    other = await nats.connect(nats_server.url)
    writer, reader = KVStore(other, bucket=prefix), KVStore(nc, bucket=prefix)
    await writer.start()
    await reader.start()
    try:
        for name in ("a", "b"):
            await writer.create(Machine(metadata=ObjectMeta(name=name, namespace="ns"),
                                        spec=MachineSpec(cluster="c", region="r")))
        a, b = (await reader.list(Machine, "ns")).items
        fresh = await writer.get(Machine, "a", "ns")
        fresh.status.phase = "Theirs"
        await writer.update_status(fresh)
        a.status.phase = "Mine"
        with pytest.raises(Conflict):
            await reader.update_status(a)
        await writer.delete(Machine, "b", "ns")
        b.metadata.labels["x"] = "y"
        with pytest.raises(NotFound):
            await reader.update(b)
        a = await reader.get(Machine, "a", "ns")
        a.status.phase = "Mine"
        assert (await reader.update_status(a)).status.phase == "Mine"
        assert (await writer.get(Machine, "a", "ns")).status.phase == "Mine"
    finally:
        await reader.close()
        await writer.close()
        await other.close()


async def test_cached_all_reads_a_followed_kind_without_a_round_trip(kv_store: KVStore) -> None:
    """None until a list has made the store follow the kind (and caught up once); then the
    cached objects themselves, following later writes, with no server call."""
    m = await kv_store.create(Machine(metadata=ObjectMeta(name="m0", namespace="ns"),
                                      spec=MachineSpec(cluster="c", region="r")))
    assert kv_store.cached_all(Machine) is None
    await kv_store.list_all(Machine)
    (cached,) = kv_store.cached_all(Machine) or []
    assert cached.metadata.name == "m0"
    assert kv_store.cached_all(Machine)[0] is cached  # type: ignore[index]  # shared, not copied
    await kv_store.delete(Machine, m.metadata.name, "ns")
    await kv_store.list_all(Machine)  # proves the delete applied
    assert kv_store.cached_all(Machine) == []


async def test_an_on_read_cache_catches_up_in_chunks(nc, prefix, monkeypatch):
    """A cache that does not follow reads what changed since its last read a chunk at a
    time (a first read may be a kind's whole history) and misses nothing across chunks."""
    from shared.store import informer

    monkeypatch.setattr(informer, "READ_CHUNK", 3)
    writer = KVStore(nc, bucket=prefix)
    reader = KVStore(nc, bucket=prefix, follow=False)
    await writer.start()
    await reader.start()
    try:
        for i in range(10):
            await writer.create(Machine(metadata=ObjectMeta(name=f"m{i}", namespace="ns"),
                                        spec=MachineSpec(cluster="c", region="r")))
        names = sorted(m.metadata.name for m in await reader.list_all(Machine))
        assert names == [f"m{i}" for i in range(10)]
        for i in range(0, 10, 2):
            await writer.delete(Machine, f"m{i}", "ns")
        m1 = await writer.get(Machine, "m1", "ns")
        m1.status.phase = "Later"
        await writer.update_status(m1)
        listed = {m.metadata.name: m for m in await reader.list_all(Machine)}
        assert sorted(listed) == ["m1", "m3", "m5", "m7", "m9"]
        assert listed["m1"].status.phase == "Later"
    finally:
        await reader.close()
        await writer.close()

