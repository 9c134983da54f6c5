"""A cluster whose Region does not offer its provider waits Pending and says so (no
provider service of the region would ever make its nodes), and goes on once the Region
offers it; while its machines wait for nodes, a provider service that is down is named."""

from __future__ import annotations

import pytest

from services.lcm import cluster as lcm_cluster
from shared.models import (
    CLUSTER_LABEL,
    Condition,
    LCMCluster,
    LCMMachine,
    Machine,
    MachineSpec,
    ObjectMeta,
    Region,
    RegionSpec,
    SimulatedMachineSpec,
)
from shared.runtime import conditions as cond
from tests.lcm.conftest import NS, REGION, Lcm
from tests.waiting import eventually


@pytest.fixture(autouse=True)
def fast_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lcm_cluster, "PROVIDER_RECHECK", 0.3)


async def region_offering(lcm: Lcm, *providers: str) -> Region:
    return await lcm.store.create(Region(metadata=ObjectMeta(name=REGION),
                                         spec=RegionSpec(providers=list(providers))))


async def available(lcm: Lcm, cluster: str) -> Condition | None:
    return cond.get((await lcm.cluster(cluster)).status, lcm_cluster.PROVIDER_AVAILABLE)


async def test_provider_the_region_lacks_keeps_the_cluster_pending(lcm: Lcm) -> None:
    region = await region_offering(lcm, "baremetal")
    await lcm.create_cluster("odd", release="mke-3-7-1", cps=1, workers=0)

    found = await eventually(lambda: available(lcm, "odd"), timeout=20,
                             what="ProviderAvailable False")
    assert (found.status, found.reason, found.severity) == (
        "False", "ProviderNotInRegion", "Error")
    assert found.message.startswith(f"region {REGION} offers baremetal, not simulated")
    c = await lcm.cluster("odd")
    ready = cond.get(c.status, cond.READY)
    assert ready is not None and ready.reason == "ProviderNotInRegion"
    assert c.status.phase == "Pending"
    lcc = await lcm.store.get(LCMCluster, "odd", NS)
    assert cond.get(lcc.status, lcm_cluster.PROVIDER_AVAILABLE) is not None

    # The operator adds the provider to the region: no cluster event follows, the recheck
    # finds it and the condition goes.
    region.spec.providers = ["baremetal", "simulated"]
    await lcm.store.update(region)

    async def offered() -> bool:
        return await available(lcm, "odd") is None

    await eventually(offered, timeout=20, what="ProviderAvailable gone")
    assert (await lcm.cluster("odd")).status.phase != "Pending"


async def test_a_provider_down_is_named_while_machines_wait_for_nodes(lcm: Lcm) -> None:
    region = await region_offering(lcm, "simulated")
    region.status.services_down = ["provider-simulated"]  # as the region's check writes it
    await lcm.store.update_status(region)
    await lcm.create_cluster("dn", release="mke-3-7-1", cps=1, workers=0)

    # Every machine has its node: the provider being down does not concern the cluster.
    await eventually(lambda: lcm.find(LCMMachine, "dn-cp0"), what="the cluster reconciled")
    assert await available(lcm, "dn") is None

    extra = await lcm.store.create(Machine(
        metadata=ObjectMeta(name="dn-w9", namespace=NS, labels={CLUSTER_LABEL: "dn"}),
        spec=MachineSpec(cluster="dn", region=REGION, simulated=SimulatedMachineSpec())))
    c = await eventually(lambda: available(lcm, "dn"), timeout=20,
                         what="ProviderAvailable False, ProviderDown")
    assert (c.status, c.reason, c.severity) == ("False", "ProviderDown", "Warning")
    assert c.message == f"no running provider-simulated in region {REGION}: this cluster's " \
        "nodes wait for it"
    assert (await lcm.cluster("dn")).status.phase != "Pending", "not the region's fault"

    await lcm.provider.provision(extra, 9)  # the provider is back and makes the node

    async def gone() -> bool:
        return await available(lcm, "dn") is None

    await eventually(gone, timeout=20, what="ProviderAvailable gone")
