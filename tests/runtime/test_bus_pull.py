"""The bus consumer's standing pull request: bounded, renewed when it expires, made again
when the server forgets it (a restart) or the durable consumer is deleted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from shared.bus import Bus, ChangeEvent, event_for, pull
from shared.models import ObjectMeta, Region, RegionSpec
from shared.natsserver import NatsServer
from tests.waiting import eventually


def region(name: str, rv: int) -> Region:
    return Region(metadata=ObjectMeta(name=name, uid=f"uid-{name}", resource_version=str(rv)),
                  spec=RegionSpec(providers=["simulated"]))


async def announce(bus: Bus, *names: str) -> None:
    for n, name in enumerate(names):
        await bus.publish(event_for("ADDED", region(name, n + 1)))


class Seen:
    def __init__(self) -> None:
        self.names: list[str] = []

    async def handle(self, ev: ChangeEvent) -> None:
        self.names.append(ev.name)


async def test_no_more_than_a_batch_is_delivered_and_unacked_at_once(
    nc: NATS, prefix: str
) -> None:
    bus = Bus(nc, prefix=prefix)
    await bus.start()
    release = asyncio.Event()
    seen = Seen()

    async def slow(ev: ChangeEvent) -> None:
        await release.wait()
        await seen.handle(ev)

    consumer = await bus.consume("bounded", [bus.subject("*", "region")], slow, batch=8)
    try:
        await announce(bus, *(f"r{i}" for i in range(20)))

        async def eight_out_twelve_waiting() -> bool:
            info = await bus.js.consumer_info(bus.stream, "bounded")
            return (info.num_ack_pending, info.num_pending) == (8, 12)

        await eventually(eight_out_twelve_waiting, what="8 delivered, 12 left in the stream")
        release.set()
        await eventually(lambda: len(seen.names) == 20, what="all 20 handled")
        assert seen.names == [f"r{i}" for i in range(20)]  # in stream order
    finally:
        await consumer.stop()


async def test_an_expired_pull_request_is_made_again(
    nc: NATS, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the server's 'request timeout' can renew it here: the silence watchdog is
    pushed out of reach."""
    monkeypatch.setattr(pull, "PULL_EXPIRES", 0.5)
    monkeypatch.setattr(pull, "IDLE_HEARTBEAT", 0.2)
    monkeypatch.setattr(pull, "SILENT_AFTER", 600.0)
    bus = Bus(nc, prefix=prefix)
    await bus.start()
    seen = Seen()
    consumer = await bus.consume("expiring", [bus.subject("*", "region")], seen.handle)
    try:
        await eventually(lambda: consumer.messages.pulls >= 3, what="two expired requests renewed")
        await announce(bus, "late")
        await eventually(lambda: seen.names == ["late"], what="an event after the renewals")
        assert consumer.messages.renewals == 0  # topped up on expiry, never lost
    finally:
        await consumer.stop()


async def test_a_deleted_durable_consumer_is_created_again(nc: NATS, prefix: str) -> None:
    bus = Bus(nc, prefix=prefix)
    await bus.start()
    seen = Seen()
    consumer = await bus.consume("deleted", [bus.subject("*", "region")], seen.handle)
    try:
        await announce(bus, "before")
        await eventually(lambda: seen.names == ["before"], what="the first event")
        await bus.js.delete_consumer(bus.stream, "deleted")

        async def exists() -> bool:
            with contextlib.suppress(Exception):
                return bool(await bus.js.consumer_info(bus.stream, "deleted"))
            return False

        await eventually(exists, what="the consumer created again")
        await announce(bus, "after")
        await eventually(lambda: seen.names == ["before", "after"], what="the next event")
        assert consumer.messages.renewals >= 1
    finally:
        await consumer.stop()


@pytest.fixture
async def own_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    await server.astart()
    yield server
    await server.astop()


async def test_the_consumer_goes_on_after_the_server_restarts(own_server: NatsServer) -> None:
    """The standing request dies with the server; the consumer hears no heartbeat and
    makes it again on the restarted one."""
    conn = await nats.connect(own_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    bus = Bus(conn, prefix="restart")
    await bus.start()
    seen = Seen()
    consumer = await bus.consume("survives", [bus.subject("*", "region")], seen.handle)
    try:
        await announce(bus, "before")
        await eventually(lambda: seen.names == ["before"], what="the first event")
        await own_server.astop()
        await own_server.astart()
        await eventually(lambda: conn.is_connected, what="the client reconnected")

        async def published() -> bool:  # JetStream takes a moment to come back
            with contextlib.suppress(Exception):
                return await bus.publish(event_for("ADDED", region("after", 7)))
            return False

        await eventually(published, timeout=20, what="a publish after the restart")
        await eventually(lambda: seen.names == ["before", "after"], timeout=20,
                         what="an event published after the restart")
        assert consumer.messages.renewals >= 1  # the request died with the server
    finally:
        await consumer.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), 10)


async def test_a_send_waits_a_bounded_time_for_a_slot_and_none_while_one_is_free(
    nc: NATS, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Announces leave without a timer while a slot is free; with every slot held by an
    unanswered send, the next gives up after ANNOUNCE_STALL instead of holding its writer."""
    from nats.js.errors import TooManyStalledMsgsError

    from shared.bus import bus as bus_module

    monkeypatch.setattr(bus_module, "ANNOUNCE_STALL", 0.2)
    bus = Bus(nc, prefix=prefix)
    await bus.start()
    bus.js = nc.jetstream(publish_async_max_pending=1)
    assert bus._stall() is None
    sent = await bus.send(event_for("ADDED", region("r0", 1)))
    assert await asyncio.wait_for(sent, 10) is True
    await bus.js._publish_async_pending_semaphore.acquire()  # an ack that never comes
    assert bus._stall() == 0.2
    with pytest.raises(TooManyStalledMsgsError):
        await bus.send(event_for("ADDED", region("r1", 2)))
