"""Node leases on a real NATS server: what a region's view holds, from its start on."""

from __future__ import annotations

from nats.aio.client import Client as NATS

from services.lcm.clock import age
from services.lcm.leases import LeaseView, NodeLeases, key_of
from shared.models import LCMMachine, LCMMachineSpec, ObjectMeta
from tests.waiting import eventually


def machine(name: str, region: str, namespace: str = "team-a") -> LCMMachine:
    return LCMMachine(
        metadata=ObjectMeta(name=name, namespace=namespace),
        spec=LCMMachineSpec(cluster="c", machine=name, region=region, release="r"),
    )


async def test_a_view_holds_its_regions_leases_from_start_on(nc: NATS, prefix: str) -> None:
    leases = NodeLeases(nc, f"{prefix}-node-leases", ttl=60)
    east = [machine("m-0", "east"), machine("m.1", "east", "team-b")]
    west = machine("m-0", "west")
    for lm in [*east, west]:
        await leases.renew(lm)

    view, everywhere = LeaseView(leases, "east"), LeaseView(leases, None)
    await view.start()
    await everywhere.start()
    try:
        # Loaded before start() returned: no node is called missing for a cold cache.
        assert len(view) == 2 and all((age(view.renewed(lm)) or 99) < 10 for lm in east)
        assert view.renewed(west) == ""  # another region's lease, same namespace and name
        assert len(everywhere) == 3 and everywhere.renewed(west)

        late = machine("m-2", "east")
        await leases.renew(late)
        await eventually(lambda: view.renewed(late), what="a renewal after start")
        first = view.renewed(east[0])
        await leases.renew(east[0])
        await eventually(lambda: view.renewed(east[0]) != first, what="a newer renewal")

        assert key_of(east[1]) == "east.team-b.m.1"
        await leases.drop(key_of(east[1]))
        await eventually(lambda: view.renewed(east[1]) == "", what="a dropped lease gone")
        assert len(view) == 2
    finally:
        await view.stop()
        await everywhere.stop()


async def test_a_view_of_an_empty_bucket_starts(nc: NATS, prefix: str) -> None:
    view = LeaseView(NodeLeases(nc, f"{prefix}-node-leases", ttl=60), "east")
    await view.start()
    try:
        assert len(view) == 0
    finally:
        await view.stop()
