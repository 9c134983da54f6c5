"""The stream's last sequence (``shared.store.lastseq``): calls in one loop turn share a
request sent after all of them, later calls see later writes, errors reach every caller."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from shared.models import Cluster, ClusterSpec, ObjectMeta
from shared.store.kv import KVStore
from shared.store.lastseq import LastSeq


class Counting(LastSeq):
    def __init__(self, nc: NATS, stream: str) -> None:
        super().__init__(nc, stream)
        self.requests = 0

    async def _ask(self, answer: asyncio.Future[int]) -> None:
        self.requests += 1
        await super()._ask(answer)


def cluster(name: str) -> Cluster:
    return Cluster(metadata=ObjectMeta(name=name, namespace="team-a"),
                   spec=ClusterSpec(region="east", provider="simulated", release="r"))


async def test_calls_in_one_turn_share_a_request_and_see_every_earlier_write(
    nc: NATS, kv_store: KVStore
) -> None:
    last = Counting(nc, f"KV_{kv_store.bucket}")
    first = await kv_store.create(cluster("a"))
    together = await asyncio.gather(*(last() for _ in range(20)))
    assert last.requests == 1
    assert set(together) == {int(first.metadata.resource_version)}

    # A call after a write is answered by a new request that includes it.
    second = await kv_store.create(cluster("b"))
    assert await last() == int(second.metadata.resource_version)
    assert last.requests == 2


async def test_one_caller_cancelled_leaves_the_answer_to_the_others(
    nc: NATS, kv_store: KVStore
) -> None:
    last = Counting(nc, f"KV_{kv_store.bucket}")
    written = await kv_store.create(cluster("a"))
    doomed = asyncio.ensure_future(last())
    kept = asyncio.ensure_future(last())
    await asyncio.sleep(0)  # both have joined the one pending request
    doomed.cancel()
    assert await kept == int(written.metadata.resource_version)
    assert doomed.cancelled() and last.requests == 1


async def test_a_missing_stream_fails_every_caller(nc: NATS) -> None:
    last = LastSeq(nc, "KV_no-such-bucket")
    results = await asyncio.gather(last(), last(), return_exceptions=True)
    assert all(isinstance(r, NotFoundError) for r in results), results
    with pytest.raises(NotFoundError):
        await last()
