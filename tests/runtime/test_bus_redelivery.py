"""JetStream redelivery through ``Bus.consume``: a failed or lost delivery comes again, and
an idempotent handler's effect still happens once."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import nats
from nats.aio.client import Client as NATS

from shared.bus import Bus, ChangeEvent, event_for
from shared.models import ObjectMeta, Region, RegionSpec
from shared.natsserver import NatsServer
from shared.store import AlreadyExists
from shared.store.kv import KVStore
from tests.waiting import eventually

ACK_WAIT = 1.0


def region(name: str) -> Region:
    return Region(metadata=ObjectMeta(name=name), spec=RegionSpec(providers=["simulated"]))


class Marker:
    """The handler's effect: one ``<name>-done`` Region per event, created idempotently
    (an effect already there is not an error, as every real consumer must treat it)."""

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()

    async def effect(self, ev: ChangeEvent) -> None:
        self.calls[ev.name] += 1
        with contextlib.suppress(AlreadyExists):
            await self.store.create(region(f"{ev.name}-done"))

    async def done(self) -> list[str]:
        return sorted(r.metadata.name for r in await self.store.list_all(Region)
                      if r.metadata.name.endswith("-done"))


async def settled(bus: Bus, durable: str) -> bool:
    """Every event delivered and acknowledged."""
    info = await bus.js.consumer_info(bus.stream, durable)
    return info.num_pending == 0 and info.num_ack_pending == 0


async def test_a_failed_handler_gets_the_event_again_and_its_effect_happens_once(
    nc: NATS, prefix: str
) -> None:
    bus = Bus(nc, prefix=prefix)
    await bus.start()
    store = KVStore(nc, bucket=f"{prefix}-objects")
    await store.start()
    marker = Marker(store)

    async def crashes_after_the_effect(ev: ChangeEvent) -> None:
        await marker.effect(ev)
        if marker.calls[ev.name] == 1:
            raise RuntimeError("died after the effect, before the ack")

    consumer = await bus.consume("redeliver", [bus.subject("*", "region")],
                                 crashes_after_the_effect, ack_wait=ACK_WAIT)
    try:
        for name in ("a", "b"):
            obj = await store.create(region(name))
            await bus.publish(event_for("ADDED", obj))
        await eventually(lambda: settled(bus, "redeliver"), what="both events acked")
        assert dict(marker.calls) == {"a": 2, "b": 2}  # each failed once, then succeeded
        assert await marker.done() == ["a-done", "b-done"]
    finally:
        await consumer.stop()
        await store.close()
        await nc.jetstream().delete_key_value(f"{prefix}-objects")


async def test_a_durable_consumer_resumes_unacked_events_after_a_restart(
    nats_server: NatsServer, nc: NATS, prefix: str
) -> None:
    """The first process takes an event and dies without acking it (and misses the next);
    a new process binding the same durable consumer gets both."""
    bus = Bus(nc, prefix=prefix)
    await bus.start()
    store = KVStore(nc, bucket=f"{prefix}-objects")
    await store.start()
    marker = Marker(store)
    subjects = [bus.subject("*", "region")]

    first = await nats.connect(nats_server.url)
    taken = asyncio.Event()

    async def hangs(ev: ChangeEvent) -> None:
        taken.set()
        await asyncio.Event().wait()  # never returns: no ack, no nak

    dying = Bus(first, prefix=prefix)
    old = await dying.consume("survivor", subjects, hangs, ack_wait=ACK_WAIT)
    second: NATS | None = None
    try:
        await bus.publish(event_for("ADDED", await store.create(region("a"))))
        await asyncio.wait_for(taken.wait(), 10)
        await first.close()  # the process is gone: its connection drops mid-handler
        await old.stop()
        await bus.publish(event_for("ADDED", await store.create(region("b"))))

        second = await nats.connect(nats_server.url)
        restarted = Bus(second, prefix=prefix)
        new = await restarted.consume("survivor", subjects, marker.effect, ack_wait=ACK_WAIT)
        try:
            await eventually(lambda: settled(bus, "survivor"), what="events acked after restart")
            assert await marker.done() == ["a-done", "b-done"]
            assert dict(marker.calls) == {"a": 1, "b": 1}
        finally:
            await new.stop()
    finally:
        if second is not None:
            await second.close()
        await store.close()
        await nc.jetstream().delete_key_value(f"{prefix}-objects")
