"""One durable consumer per kind and region in a process, shared by its controllers: each
listener hears what its region asks for, a failing one gets the event again, and the
consumer lives as long as one listener does."""

from __future__ import annotations

from nats.aio.client import Client as NATS

from shared.bus import Bus, ChangeEvent
from shared.models import (
    CLUSTER_LABEL,
    Cluster,
    ClusterSpec,
    Machine,
    MachineSpec,
    ObjectMeta,
    SimulatedMachineSpec,
)
from shared.runtime import Controller, Request, Result, Watch, owned_by
from tests.harness import system
from tests.waiting import eventually

_seq = iter(range(1, 1_000_000))


def event(name: str, region: str, kind: str = "Cluster") -> ChangeEvent:
    rv = str(next(_seq))
    return ChangeEvent(id=f"{kind}:{name}:{rv}", type="ADDED", kind=kind, name=name,
                       namespace="default", uid=f"uid-{name}", resource_version=rv,
                       region=region, time="2026-12-02T00:00:00Z")


class Heard:
    def __init__(self, fail_first: int = 0) -> None:
        self.names: list[str] = []
        self.fail_first = fail_first

    async def __call__(self, ev: ChangeEvent) -> None:
        self.names.append(ev.name)
        if self.fail_first > 0:
            self.fail_first -= 1
            raise RuntimeError("not now")


async def consumers(bus: Bus) -> list[str]:
    return sorted(c.name for c in await bus.js.consumers_info(bus.stream))


async def test_listeners_of_a_kind_share_one_consumer_and_hear_their_regions(
    nc: NATS, prefix: str
) -> None:
    bus = Bus(nc, prefix=prefix, service="svc")
    await bus.start()
    regional, with_global, everywhere = Heard(), Heard(), Heard()
    a = await bus.listen("Cluster", "r1", regional)
    b = await bus.listen("Cluster", "r1", with_global, with_global=True)
    c = await bus.listen("Cluster", None, everywhere)
    try:
        assert await consumers(bus) == ["svc-all-cluster", "svc-r1-cluster"]
        for ev in (event("in-r1", "r1"), event("release", "global"), event("in-r2", "r2"),
                   event("m", "r1", kind="Machine")):
            await bus.publish(ev)
        await eventually(lambda: len(everywhere.names) == 3, what="every region's clusters")
        await eventually(lambda: with_global.names == ["in-r1", "release"],
                         what="r1 and global")
        assert regional.names == ["in-r1"]
        assert sorted(everywhere.names) == ["in-r1", "in-r2", "release"]
        info = await bus.js.consumer_info(bus.stream, "svc-r1-cluster")
        assert (info.num_ack_pending, info.num_pending) == (0, 0)  # acked once, not per listener
    finally:
        for listener in (a, b, c):
            await listener.stop()
        await bus.stop()


async def test_a_failing_listener_gets_the_event_again_and_the_others_hear_it_twice(
    nc: NATS, prefix: str
) -> None:
    bus = Bus(nc, prefix=prefix, service="svc")
    await bus.start()
    flaky, steady = Heard(fail_first=1), Heard()
    listeners = [await bus.listen("Cluster", "r1", flaky),
                 await bus.listen("Cluster", "r1", steady)]
    try:
        await bus.publish(event("c1", "r1"))
        await eventually(lambda: flaky.names == ["c1", "c1"], what="redelivery after the nak")
        assert steady.names == ["c1", "c1"]  # idempotent listeners absorb the repeat
    finally:
        for listener in listeners:
            await listener.stop()
        await bus.stop()


async def test_the_consumer_lives_while_one_listener_does(nc: NATS, prefix: str) -> None:
    bus = Bus(nc, prefix=prefix, service="svc")
    await bus.start()
    first, second, later = Heard(), Heard(), Heard()
    one = await bus.listen("Cluster", "r1", first)
    two = await bus.listen("Cluster", "r1", second)
    try:
        await one.stop()
        await bus.publish(event("after-one-left", "r1"))
        await eventually(lambda: second.names == ["after-one-left"], what="the other hears")
        assert first.names == []
        await two.stop()
        assert "svc-r1-cluster" not in bus.fanouts
        assert not bus._consumers  # stopped and forgotten: leadership may come and go

        async def nobody_pulls() -> bool:
            info = await bus.js.consumer_info(bus.stream, "svc-r1-cluster")
            return info.num_waiting == 0

        await eventually(nobody_pulls, what="the pull request withdrawn")
        await bus.publish(event("while-nobody-listens", "r1"))
        assert second.names == ["after-one-left"]
        # The durable kept its place: a new listener hears what came while none listened.
        three = await bus.listen("Cluster", "r1", later)
        await eventually(lambda: later.names == ["while-nobody-listens"], what="kept event")
        await three.stop()
    finally:
        await bus.stop()


class Keys:
    def __init__(self) -> None:
        self.keys: set[str] = set()

    async def reconcile(self, req: Request) -> Result:
        self.keys.add(req.name)
        return Result.done()


async def test_controllers_of_a_process_hold_one_consumer_per_kind(nc: NATS, prefix: str) -> None:
    """Three controllers hearing Machines and Clusters of one region: two consumers on the
    stream, not five, and each controller still hears the writes it watches."""
    async with system(nc, prefix) as h:
        machines, clusters, pools = Keys(), Keys(), Keys()
        watch = [Watch(Machine, owned_by("Cluster"))]
        ctls = [
            Controller(name="machines", kind=Machine, reconciler=machines, store=h.store,
                       bus=h.bus, region="r1"),
            Controller(name="clusters", kind=Cluster, reconciler=clusters, store=h.store,
                       bus=h.bus, region="r1", watches=watch),
            Controller(name="pools", kind=Cluster, reconciler=pools, store=h.store,
                       bus=h.bus, region="r1", watches=watch),
        ]
        for ctl in ctls:
            await ctl.start()
        try:
            mine = [n for n in await consumers(h.bus) if n.startswith("test-")]
            assert mine == ["test-r1-cluster", "test-r1-machine"]
            c = await h.store.create(Cluster(
                metadata=ObjectMeta(name="c1", namespace="default"),
                spec=ClusterSpec(region="r1", provider="simulated", release="mke-3-7-1")))
            await eventually(lambda: "c1" in clusters.keys and "c1" in pools.keys,
                             what="both Cluster controllers hear the Cluster")
            clusters.keys.clear()
            pools.keys.clear()
            await h.store.create(Machine(
                metadata=ObjectMeta(name="m1", namespace="default",
                                    labels={CLUSTER_LABEL: "c1"},
                                    owner_references=[c.owner_ref()]),
                spec=MachineSpec(cluster="c1", role="worker", region="r1",
                                 simulated=SimulatedMachineSpec())))
            await eventually(lambda: "m1" in machines.keys, what="the Machine controller")
            await eventually(lambda: "c1" in clusters.keys and "c1" in pools.keys,
                             what="both watches map the Machine to its Cluster")
        finally:
            for ctl in ctls:
                await ctl.stop()
        assert not h.bus.fanouts


async def test_consumers_of_one_controller_each_left_by_an_earlier_version_go(
    nc: NATS, prefix: str
) -> None:
    """A server this version takes over holds the durables an earlier one read, one per
    controller and watch: nothing reads them any more, so the controller deletes them."""
    from nats.js import api

    async with system(nc, prefix) as h:
        legacy = ["clusters-r1", "clusters-r1-w0-machine"]
        for name in [*legacy, "someone-elses"]:
            await h.bus.js.add_consumer(h.bus.stream, api.ConsumerConfig(
                durable_name=name, ack_policy=api.AckPolicy.EXPLICIT,
                filter_subject=h.bus.subject("r1", "Cluster")))
        ctl = Controller(name="clusters", kind=Cluster, reconciler=Keys(), store=h.store,
                         bus=h.bus, region="r1", watches=[Watch(Machine, owned_by("Cluster"))])
        await ctl.start()
        try:
            names = await consumers(h.bus)
        finally:
            await ctl.stop()
        assert not set(legacy) & set(names)
        assert {"someone-elses", "test-r1-cluster", "test-r1-machine"} <= set(names)
