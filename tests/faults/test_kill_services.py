"""kill -9 each service (and the nats-server) mid-provisioning, start it again, and check
that every cluster still reaches Ready, the provider holds exactly one node per Machine,
and every write the API acknowledged is still there.

Also: LCM killed while a pool scales, and while a rolling reboot has a node in flight.

Each test: two clusters are created and provisioning starts; the victim is SIGKILLed
while a ledger writer keeps PATCHing through the API; a third cluster is created while
the victim is down (or right after, when the victim is the API or the server); then the
victim is started again. Small clusters and a short simulated provisioning time keep a
test within ~30 s.
"""

from __future__ import annotations

import asyncio

import pytest

from shared.models import (
    GRACEFUL_REBOOT_ANNOTATION,
    POOL_LABEL,
    REBOOT_REQUEST_ANNOTATION,
    Cluster,
    GracefulRebootRequest,
    LCMMachine,
    Machine,
    MachinePool,
)
from shared.runtime import conditions as cond
from shared.tasks import cancel_all
from tests.faults.conftest import NS, Region
from tests.waiting import eventually

pytestmark = pytest.mark.slow


async def provisioning_started(region: Region) -> None:
    async def some_node() -> bool:
        return any(m.status.provider_id for m in await region.machines())

    await eventually(some_node, timeout=60, what="the provider making a first node")


@pytest.mark.parametrize("victim", ["api", "bridge", "lcm", "provider", "mirror", "fleet"])
async def test_kill9_service_mid_provisioning(region: Region, victim: str) -> None:
    clusters = ["alpha", "beta"]
    for c in clusters:
        await region.create_cluster(c)
    await provisioning_started(region)
    assert not all([await region.ready(c) for c in clusters]), "finished before the kill"
    stop = asyncio.Event()
    writer = asyncio.create_task(region.ledger_writer(stop))
    await asyncio.sleep(0.3)  # let the ledger take some writes before the kill
    region.kill9(victim)
    if victim != "api":
        await region.create_cluster("gamma")
    else:
        await asyncio.sleep(1.0)  # the API is down: writes are refused, not lost
    region.start(victim)
    if victim == "api":
        await region.wait_api()
        await region.create_cluster("gamma")
    await asyncio.sleep(0.5)
    stop.set()
    await writer
    assert region.acked.ledger, "the ledger writer got no write acknowledged"
    await region.check_invariants([*clusters, "gamma"])


async def test_restart_nats_server_mid_provisioning(region: Region) -> None:
    clusters = ["alpha", "beta"]
    for c in clusters:
        await region.create_cluster(c)
    await provisioning_started(region)
    stop = asyncio.Event()
    writer = asyncio.create_task(region.ledger_writer(stop))
    await asyncio.sleep(0.3)
    await region.restart_nats()
    await region.wait_api()

    async def gamma() -> bool:
        try:
            await region.create_cluster("gamma")
        except AssertionError:
            return False
        return True

    await eventually(gamma, timeout=30, interval=0.5, what="creating a cluster after restart")
    await asyncio.sleep(0.5)
    stop.set()
    await writer
    await region.check_invariants([*clusters, "gamma"])


async def test_kill9_lcm_while_a_pool_scales(region: Region) -> None:
    """LCM killed once it has started on a pool (its Machines provisioning), and the pool
    scaled up through the scale subresource while LCM is down: once LCM is back the pool
    has exactly its replicas - no name twice, no Machine made twice, one node each - and
    the cluster is Ready with all of them."""
    await region.create_cluster("alpha", workers=0)
    await region.post("machinepools", {
        "metadata": {"name": "pool"},
        "spec": {"cluster": "alpha", "region": "local", "replicas": 4,
                 "template": {"spec": {"simulated": {}}}}})

    async def pool_machines() -> list[str]:
        return sorted(m.metadata.name for m in await region.machines()
                      if m.metadata.labels.get(POOL_LABEL) == "pool")

    await eventually(pool_machines, timeout=60, what="the pool's first machine")
    region.kill9("lcm")
    await region.scale("pool", 6)
    region.start("lcm")

    async def pool_ready() -> bool:
        st = (await region.store.get(MachinePool, "pool", NS)).status
        return (st.replicas, st.ready_replicas) == (6, 6)

    # The cluster may be Ready with the pool's first four a moment before the restarted LCM
    # takes up the scale: wait for the pool itself to say it has all six.
    await eventually(pool_ready, timeout=90, what="the pool's six machines Ready")
    await region.check_invariants(["alpha"])
    assert await pool_machines() == [f"pool-{i}" for i in range(6)]
    cluster = await region.store.get(Cluster, "alpha", NS)
    assert cluster.status.total_machines == 7


async def test_kill9_lcm_during_a_graceful_reboot(region: Region) -> None:
    """LCM killed while a rolling reboot has a node in flight, started again: it finishes
    the reboot from what the request recorded - every machine rebooted once (one request id
    each, none repeated by the restart), no node left cordoned or marked."""
    names = await region.create_cluster("alpha", workers=2)
    await eventually(lambda: region.ready("alpha"), timeout=90, what="alpha Ready")
    asked: dict[str, set[str]] = {}

    async def follow() -> None:
        async for ev in region.store.watch(Machine, NS):
            request = ev.object.metadata.annotations.get(REBOOT_REQUEST_ANNOTATION)
            if request:
                asked.setdefault(ev.object.metadata.name, set()).add(request)

    watcher = asyncio.create_task(follow())
    try:
        await region.post("gracefulrebootrequests", {"metadata": {"name": "alpha"},
                                                     "spec": {"region": "local"}})
        region.acked.objects.pop(("GracefulRebootRequest", "alpha"))  # deleted once done

        async def in_flight() -> bool:
            r = await region.store.get(GracefulRebootRequest, "alpha", NS)
            return any(t.state in ("Draining", "Rebooting") for t in r.status.targets)

        await eventually(in_flight, timeout=60, what="a machine in flight")
        region.kill9("lcm")
        region.start("lcm")

        async def completed() -> bool:
            c = cond.get((await region.store.get(Cluster, "alpha", NS)).status,
                         "GracefulReboot")
            return c is not None and (c.status, c.reason) == ("True", "Completed")

        await eventually(completed, timeout=120, what="the reboot completed after the restart")
    finally:
        await cancel_all([watcher])
    assert {n: len(ids) for n, ids in asked.items()} == {n: 1 for n in names}, asked
    for lm in await region.store.list_all(LCMMachine, NS):
        assert not lm.spec.cordoned and GRACEFUL_REBOOT_ANNOTATION not in (
            lm.metadata.annotations), lm.metadata.name
    await region.check_invariants(["alpha"])
