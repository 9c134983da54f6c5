"""KV watch resume: ``Gone`` whenever the bucket can no longer prove the history complete.

The contract suite covers the common case (a key rewritten beyond ``HISTORY``); these are
the KV-only ways a change after the resume point disappears: purges, with and without a
marker, and writes from before the store named each write's predecessor.
"""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client as NATS

from shared.models import Machine, MachineSpec, ObjectMeta
from shared.store import Gone
from shared.store.kv import ORIGIN_KEY, KVStore

NS = "ns"
EVENT_TIMEOUT = 10.0


def machine(name: str) -> Machine:
    return Machine(metadata=ObjectMeta(name=name, namespace=NS),
                   spec=MachineSpec(cluster="c", region="r"))


@pytest.fixture
def store(kv_store: KVStore) -> KVStore:
    return kv_store


async def first(store: KVStore, rv: str):
    events = store.watch(Machine, NS, resource_version=rv)
    try:
        return await asyncio.wait_for(anext(events), EVENT_TIMEOUT)
    finally:
        await events.aclose()


async def test_a_purged_change_after_the_version_is_gone(store: KVStore) -> None:
    start = (await store.create(machine("early"))).metadata.resource_version
    await store.create(machine("a"))
    await store.kv.purge(f"Machine.{NS}.a")  # the marker rolls up a's creation
    with pytest.raises(Gone, match="purged"):
        await first(store, start)


async def test_a_change_removed_without_a_marker_is_gone(store: KVStore, nc: NATS) -> None:
    """A stream purge leaves no trace in the key; the stream's first kept sequence does."""
    start = (await store.create(machine("x"))).metadata.resource_version
    await store.create(machine("y"))
    last = await store.create(machine("z"))
    js = nc.jetstream()
    for key in (ORIGIN_KEY, f"Machine.{NS}.x", f"Machine.{NS}.y"):  # all before z
        await js.purge_stream(f"KV_{store.bucket}", subject=f"$KV.{store.bucket}.{key}")
    with pytest.raises(Gone, match="too old"):
        await first(store, start)  # y's creation, after start, is gone
    # From the first kept version on, the history is complete again.
    ev = await first(store, str(int(last.metadata.resource_version) - 1))
    assert (ev.type, ev.object.metadata.name) == ("ADDED", "z")


async def test_writes_without_a_predecessor_header_are_trusted(store: KVStore) -> None:
    """Revisions written before writes named their predecessor (or from outside the
    store) prove nothing either way: a resume over them still works."""
    start = (await store.create(machine("early"))).metadata.resource_version
    for i in range(6):  # more than HISTORY raw rewrites of one key
        await store.kv.put(f"Machine.{NS}.legacy", f"raw {i}".encode())
    a = await store.create(machine("a"))
    ev = await first(store, start)
    assert (ev.type, ev.object.metadata.name) == ("ADDED", "a")
    assert ev.object.metadata.resource_version == a.metadata.resource_version
