"""Recorded events (``shared.runtime.recorder``) from real status writes on a real KV store
and nats-server: transitions kept in order, repeats aggregated, objects kept apart, and a
recorder that cannot publish never holding up the reconcile that records."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from shared.models import Machine, MachineSpec, ObjectMeta, Region, RegionSpec
from shared.natsserver import NatsServer
from shared.runtime import Controller, Request, conditions, status_writer, update_status
from shared.runtime import recorder as rec
from shared.store.kv import KVStore
from tests.harness import system
from tests.waiting import eventually

NS = "team-a"


@pytest.fixture
def store(kv_store: KVStore) -> KVStore:
    return kv_store


@pytest.fixture
async def recorder(nc: NATS, prefix: str) -> AsyncIterator[rec.Recorder]:
    r = rec.Recorder(nc, prefix=prefix, source="test")
    yield r
    await r.stop()
    await nc.jetstream().delete_stream(rec.stream_name(prefix))


async def machine(store: KVStore, name: str = "m") -> Machine:
    return await store.create(Machine(metadata=ObjectMeta(name=name, namespace=NS),
                                      spec=MachineSpec(cluster="c1", region="local")))


async def flap(store: KVStore, m: Machine, *states: bool) -> Machine:
    for up in states:
        async with status_writer(store, m) as obj:
            if up:
                conditions.mark_true(obj.status, "Ready", "Running")
            else:
                conditions.mark_false(obj.status, "Ready", "Down", "disk failed", "Error")
        m = await store.get(Machine, m.metadata.name, NS)
    return m


async def events_of(nc: NATS, prefix: str, m: Machine, **kw) -> list[rec.Event]:
    return await rec.read(nc, prefix, "Machine", NS, m.metadata.name, uid=m.metadata.uid or "",
                          **kw)


async def test_every_transition_is_kept_newest_first(nc, prefix, store, recorder) -> None:
    m = await machine(store)
    with rec.recording(recorder, "lcm-machine"):
        m = await flap(store, m, True, False, True)
    await recorder.flush()
    evs = await events_of(nc, prefix, m)
    assert [(e.type, e.reason, e.message, e.count) for e in evs] == [
        ("Normal", "Running", "Ready True (was False)", 1),
        ("Warning", "Down", "Ready False (was True): disk failed", 1),
        ("Normal", "Running", "Ready True", 1),
    ]
    first = evs[-1]
    assert first.involved_object == rec.InvolvedObject(kind="Machine", namespace=NS, name="m",
                                                       uid=m.metadata.uid)
    assert first.reporting_controller == "lcm-machine"
    # The same status written again changes nothing, so records nothing.
    with rec.recording(recorder, "lcm-machine"):
        await flap(store, m, True)
    await recorder.flush()
    assert len(await events_of(nc, prefix, m)) == 3


async def test_identical_events_aggregate(nc, prefix, store, recorder) -> None:
    m = await machine(store)
    with rec.recording(recorder, "lcm-machine"):
        m = await flap(store, m, True, False, True, False, True, False)
    await recorder.flush()
    assert recorder.published == 6
    evs = await events_of(nc, prefix, m)
    assert [(e.message.split(":")[0], e.count) for e in evs] == [
        ("Ready False (was True)", 3), ("Ready True (was False)", 2), ("Ready True", 1),
    ]
    down = evs[0]
    assert down.first_timestamp <= down.last_timestamp
    # Outside the aggregation window the same event starts afresh.
    recorder.aggregate_window = 0.0
    with rec.recording(recorder, "lcm-machine"):
        await flap(store, m, True, False)
    await recorder.flush()
    counts = [e.count for e in await events_of(nc, prefix, m) if e.reason == "Down"]
    assert counts == [1, 3]


async def test_events_of_other_objects_never_show(nc, prefix, store, recorder) -> None:
    a, b = await machine(store, "a"), await machine(store, "a.b")
    with rec.recording(recorder, "ctl"):
        await flap(store, a, True)
        await flap(store, b, False)
    await recorder.flush()
    assert [e.reason for e in await events_of(nc, prefix, a)] == ["Running"]
    assert [e.involved_object.name for e in await events_of(nc, prefix, b)] == ["a.b"]
    # A new object under an old name does not inherit the old one's events.
    await store.delete(Machine, "a", NS)
    again = await machine(store, "a")
    assert await events_of(nc, prefix, again) == []
    assert await rec.read(nc, prefix, "Machine", NS, "never-written") == []


async def test_update_status_records_and_unbound_writes_do_not(nc, prefix, store, recorder):
    m = await machine(store)
    await flap(store, m, True)  # no recorder bound, none installed: nothing recorded

    def down(obj: Machine) -> None:
        conditions.mark_false(obj.status, "Ready", "Down", "", "Info")

    with rec.recording(recorder, "agent-endpoint"):
        m = await update_status(store, await store.get(Machine, "m", NS), down)
    await recorder.flush()
    evs = await events_of(nc, prefix, m)
    assert [(e.type, e.message, e.reporting_controller) for e in evs] == [
        ("Normal", "Ready False (was True)", "agent-endpoint")]


class WritesConditions:
    """A reconciler flipping many conditions per pass, timing its own status writes."""

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self.write_seconds: list[float] = []

    async def reconcile(self, req: Request) -> None:
        obj = await self.store.get(Region, req.name)
        start = time.monotonic()
        async with status_writer(self.store, obj) as r:
            for i in range(20):
                conditions.mark_false(r.status, f"Check{i}", "Failing", f"check {i} fails")
        self.write_seconds.append(time.monotonic() - start)


async def test_full_queue_drops_without_blocking_the_reconcile(
    nc, prefix, tmp_path: Path
) -> None:
    """The recorder's NATS server is gone: its publisher hangs on each publish, the queue
    fills, further events are dropped and counted, and the status writes stay fast."""
    dead = NatsServer(tmp_path / "dead")
    await dead.astart()
    lost = await nats.connect(dead.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    await dead.astop()
    stuck = rec.Recorder(lost, prefix=prefix, source="test", max_queue=4)
    dropped_before = rec.DROPPED.labels("queue_full")._value.get()
    try:
        async with system(nc, prefix) as h:
            reconciler = WritesConditions(h.store)
            ctl = Controller(name="checks", kind=Region, reconciler=reconciler, store=h.store,
                             bus=h.bus, recorder=stuck)
            await ctl.start()
            try:
                await h.store.create(Region(metadata=ObjectMeta(name="r1"),
                                            spec=RegionSpec(providers=["simulated"])))
                await eventually(lambda: reconciler.write_seconds, what="the reconcile")
            finally:
                await ctl.stop()
            stored = await h.store.get(Region, "r1")
            assert len(stored.status.conditions) == 20
    finally:
        await stuck.stop(timeout=0)  # nothing can be flushed: the server is gone
        with contextlib.suppress(Exception):  # its server is gone: closing may fail
            await asyncio.wait_for(lost.close(), 10)
    assert stuck.dropped >= 20 - 4 - 1  # the pump may have taken one off the queue
    assert rec.DROPPED.labels("queue_full")._value.get() - dropped_before == stuck.dropped
    assert reconciler.write_seconds[0] < 1.0  # far below one publish timeout


class MarksReady:
    def __init__(self, store: KVStore) -> None:
        self.store = store

    async def reconcile(self, req: Request) -> None:
        obj = await self.store.get(Region, req.name)
        async with status_writer(self.store, obj) as r:
            conditions.mark_true(r.status, "Ready", "Serving", "all services up")


async def test_controllers_record_as_themselves_by_default(nc, prefix) -> None:
    async with system(nc, prefix) as h:
        ctl = Controller(name="region-ready", kind=Region, reconciler=MarksReady(h.store),
                         store=h.store, bus=h.bus)
        await ctl.start()
        try:
            assert ctl.recorder is not None and rec.current() == (ctl.recorder, "test")
            r1 = await h.store.create(Region(metadata=ObjectMeta(name="r1"),
                                             spec=RegionSpec(providers=["simulated"])))

            async def recorded() -> list[rec.Event]:
                return await rec.read(nc, prefix, "Region", None, "r1", uid=r1.metadata.uid)

            evs = await eventually(recorded, what="the Ready event")
        finally:
            await ctl.stop()
        assert [(e.reason, e.message, e.reporting_controller) for e in evs] == [
            ("Serving", "Ready True: all services up", "region-ready")]
        assert ctl.recorder is None and rec.current() is None  # released with the controller
