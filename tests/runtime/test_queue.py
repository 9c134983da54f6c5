"""Work queue: dedupe, one worker per key, dirty re-runs, backoff bounds."""

from __future__ import annotations

import asyncio

from shared.runtime.queue import WorkQueue


async def test_dedupes_waiting_keys():
    q: WorkQueue[str] = WorkQueue()
    for k in ["a", "b", "a", "a", "c", "b"]:
        q.add(k)
    got = [await q.get() for _ in range(3)]
    assert got == ["a", "b", "c"]
    assert len(q) == 0


async def test_key_added_while_processing_runs_again_after_done_never_concurrently():
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    first = await q.get()
    q.add("a")  # arrives while a worker holds it
    assert len(q) == 0, "must not be handed to a second worker"
    q.done(first)
    again = await asyncio.wait_for(q.get(), 1)
    assert again == "a"
    q.done(again)
    assert len(q) == 0


async def test_backoff_grows_exponentially_with_jitter_and_cap():
    q: WorkQueue[str] = WorkQueue(base_delay=0.1, max_delay=1.0)
    delays = [q.backoff("k") for _ in range(8)]
    for n, d in enumerate(delays):
        nominal = min(0.1 * 2**n, 1.0)
        assert nominal * 0.5 <= d <= nominal
    assert q.failures("k") == 8
    q.forget("k")
    assert q.failures("k") == 0


async def test_add_after_keeps_the_earliest_timer():
    q: WorkQueue[str] = WorkQueue()
    q.add_after("k", 5.0)
    q.add_after("k", 0.05)
    assert await asyncio.wait_for(q.get(), 2) == "k"
