"""A KV list is a complete cut even while objects are being rewritten under it.

Regression: last-per-subject delivery (and nats-py's KV watch built on it) could end a
snapshot before a key being rewritten arrived, so a list now and then missed an object;
controllers then acted on a partial view (a rollout saw fewer machines than exist).
"""

from __future__ import annotations

import asyncio

from shared.models import Machine, MachineSpec, ObjectMeta
from shared.store.kv import KVStore


async def test_list_never_misses_an_object_being_rewritten(nc, prefix):
    store = KVStore(nc, bucket=prefix)
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
    assert info.state.consumer_count == 0, "lists leave no consumers behind"
