"""Batched direct reads of a stream (``shared.natsutil.read_stream``): everything after a
sequence, in order, across batches; only a subject's messages when asked; at most a
limit, from which the caller reads on; nothing (not an error) past the end."""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.js import api

from shared.natsutil import read_stream


async def test_reads_on_across_batches_filters_and_stops_at_a_limit(nc: NATS, prefix: str,
                                                                    ) -> None:
    js = nc.jetstream()
    stream = f"RS_{prefix}".replace("-", "_")
    await js.add_stream(api.StreamConfig(name=stream, subjects=[f"{prefix}.>"],
                                         allow_direct=True))
    try:
        for i in range(25):
            await js.publish(f"{prefix}.{'a' if i % 5 else 'b'}.{i}", str(i).encode())

        def seqs(msgs) -> list[int]:
            return [int(m.headers["Nats-Sequence"]) for m in msgs]

        everything = await read_stream(nc, js, stream, 0, batch=4)
        assert seqs(everything) == list(range(1, 26))
        assert [m.data for m in everything] == [str(i).encode() for i in range(25)]
        assert everything[3].headers["Nats-Subject"] == f"{prefix}.a.3"

        after = await read_stream(nc, js, stream, 20, batch=4)
        assert seqs(after) == [21, 22, 23, 24, 25]
        assert await read_stream(nc, js, stream, 25) == []

        only_b = await read_stream(nc, js, stream, 0, subject=f"{prefix}.b.>", batch=2)
        assert seqs(only_b) == [1, 6, 11, 16, 21]

        first = await read_stream(nc, js, stream, 0, limit=7, batch=4)
        assert seqs(first) == list(range(1, 8))
        rest = await read_stream(nc, js, stream, 7, limit=100, batch=4)
        assert seqs(rest) == list(range(8, 26))
    finally:
        await js.delete_stream(stream)
