"""A cluster whose provider has no node for some machines stays Pending and says why."""

from __future__ import annotations

from shared.models import LCMCluster, LCMMachine, Machine
from shared.runtime import conditions as cond
from shared.runtime import update_status
from tests.lcm.conftest import NS, Lcm
from tests.waiting import eventually

NO_HOST = "no free BareMetalHost in region local matches the machine"


async def no_capacity(lcm: Lcm, name: str) -> None:
    """Play the provider finding no node: ProviderReady=False, NoCapacity (as bare metal)."""
    m = await lcm.store.get(Machine, name, NS)

    def mutate(obj: Machine) -> None:
        cond.mark_false(obj.status, "ProviderReady", "NoCapacity", NO_HOST, "Warning")

    await update_status(lcm.store, m, mutate)


async def test_shortfall_keeps_cluster_pending_until_a_node_is_found(lcm: Lcm) -> None:
    names = await lcm.create_cluster("cap", release="mke-3-7-1", cps=1, workers=2)
    cp, w0, w1 = names
    await no_capacity(lcm, w0)
    await no_capacity(lcm, w1)
    await eventually(lambda: lcm.find(LCMMachine, cp), what="LCMMachine")
    await lcm.start_agent(cp)

    async def pending() -> object:
        c = await lcm.cluster("cap")
        ready = cond.get(c.status, "MachinesReady")
        if c.status.phase == "Pending" and ready is not None and ready.message.startswith("1 of"):
            return c
        return None

    c = await eventually(pending, timeout=30, what="cluster Pending with one machine ready")
    cap = cond.get(c.status, "Capacity")
    assert cap is not None and (cap.status, cap.reason) == ("False", "NoCapacity")
    assert cap.message == f"2 of 3 machines wait for capacity; {w0}: {NO_HOST}"
    summary = cond.get(c.status, "Ready")
    assert summary is not None and summary.status == "False" and summary.reason == "NoCapacity"
    lcc = await lcm.store.get(LCMCluster, "cap", NS)
    assert lcc.status.phase == "Pending"
    mirrored = cond.get(lcc.status, "Capacity")
    assert mirrored is not None and mirrored.message == cap.message

    # One host frees up: one machine still waits, and the message counts it.
    await lcm.provider.provision(await lcm.store.get(Machine, w0, NS), 2)

    async def one_left() -> str:
        c = cond.get((await lcm.cluster("cap")).status, "Capacity")
        return c.message if c is not None and c.message.startswith("1 of 3") else ""

    assert w1 in await eventually(one_left, timeout=10, what="one machine left waiting")

    # The last one gets its node: the condition goes, the cluster deploys and is Ready.
    await lcm.provider.provision(await lcm.store.get(Machine, w1, NS), 3)
    await lcm.start_agent(w0)
    await lcm.start_agent(w1)
    await eventually(lambda: lcm.ready("cap"), timeout=30, what="cluster Ready")
    c = await lcm.cluster("cap")
    assert c.status.phase == "Ready" and cond.get(c.status, "Capacity") is None
    lcc = await lcm.store.get(LCMCluster, "cap", NS)
    assert lcc.status.phase == "Ready" and cond.get(lcc.status, "Capacity") is None
