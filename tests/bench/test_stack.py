"""The bench stack's per-client message counts, read from a real nats-server's /connz."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import nats
import pytest

from bench.common import Stack


@pytest.fixture
def stack() -> Iterator[Stack]:
    s = Stack(prefix="t")
    s.start_nats()
    try:
        yield s
    finally:
        s.stop()


async def test_messages_counted_by_connection_name(stack: Stack) -> None:
    pub = await nats.connect(stack.nats_url, name="writer")
    sub_nc = await nats.connect(stack.nats_url, name="reader")
    other = await nats.connect(stack.nats_url, name="reader")  # a second connection, same name
    idle = await nats.connect(stack.nats_url, name="idle")
    try:
        got = 0
        done = asyncio.Event()

        async def on_msg(_msg: object) -> None:
            nonlocal got
            got += 1
            if got == 30:
                done.set()

        await sub_nc.subscribe("t.x", cb=on_msg)
        await other.subscribe("t.x", cb=on_msg)
        await sub_nc.flush()
        await other.flush()
        before = await asyncio.to_thread(stack.nats_messages)
        for i in range(15):
            await pub.publish("t.x", str(i).encode())
        await pub.flush()
        await asyncio.wait_for(done.wait(), 10)
        after = await asyncio.to_thread(stack.nats_messages)
        assert after["writer"][0] - before["writer"][0] == 15
        assert after["reader"][1] - before["reader"][1] == 30  # both connections summed
        since = await asyncio.to_thread(stack.nats_messages, before)
        assert since == {"writer": (15, 0), "reader": (0, 30)}  # "idle" moved nothing
        await other.close()  # a closed connection still counts
        assert await asyncio.to_thread(stack.nats_messages, before) == since
    finally:
        for nc in (pub, sub_nc, other, idle):
            await nc.close()
