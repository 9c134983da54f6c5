"""Machine deletion (drain, provider deprovision, finalizer) and the Cluster delete cascade
(its MachineHealthChecks included)."""

from __future__ import annotations

from services.lcm.healthcheck import FINALIZER as HC_FINALIZER
from services.lcm.machine import FINALIZER
from shared.models import Cluster, LCMCluster, LCMMachine, Machine, MachineHealthCheck, convert
from shared.runtime import conditions as cond
from tests.lcm.conftest import NS, PROVIDER_FINALIZER, Lcm
from tests.waiting import eventually


async def test_machine_delete_drains_then_waits_for_provider_then_cascade(lcm: Lcm) -> None:
    names = await lcm.create_cluster("del", release="mke-3-7-1", cps=1, workers=2)
    await eventually(lambda: lcm.find(LCMMachine, names[-1]), what="LCMMachines")
    for n in names:
        await lcm.start_agent(n)
    await eventually(lambda: lcm.ready("del"), timeout=30, what="Ready")
    await lcm.store.create(convert(MachineHealthCheck, {
        "metadata": {"name": "del-hc", "namespace": NS},
        "spec": {"cluster": "del", "region": "local"}}))

    async def followed() -> bool:
        hc = await lcm.store.get(MachineHealthCheck, "del-hc", NS)
        return HC_FINALIZER in hc.metadata.finalizers and hc.status.expected_machines == 3

    await eventually(followed, what="the health check followed by LCM")
    m = await lcm.store.get(Machine, "del-w1", NS)
    assert FINALIZER in m.metadata.finalizers

    lcm.provider.hold.add("del-w1")
    assert await lcm.store.delete(Machine, "del-w1", NS) is not None

    async def drained() -> Machine | None:
        m = await lcm.find(Machine, "del-w1")
        return m if m is not None and cond.is_true(m.status, "Drained") else None

    m = await eventually(drained, timeout=15, what="Drained")
    assert cond.get(m.status, "Drained").reason == "Drained"  # the agent acked, not skipped
    assert (lcm.root("del-w1") / "var/lib/ccloud/node-state").read_text().strip() == "cordoned"
    # The provider has not deprovisioned yet, so LCM keeps its finalizer and the LCMMachine.
    m = await lcm.store.get(Machine, "del-w1", NS)
    assert set(m.metadata.finalizers) == {PROVIDER_FINALIZER, FINALIZER}
    assert await lcm.find(LCMMachine, "del-w1") is not None

    lcm.provider.hold.discard("del-w1")
    await eventually(lambda: lcm.gone(Machine, "del-w1"), timeout=15, what="machine gone")
    assert await lcm.gone(LCMMachine, "del-w1")
    assert ("del-w1", "Drained") in lcm.provider.deprovisioned

    async def two_ready() -> bool:
        c = await lcm.cluster("del")
        return (c.status.ready_machines, c.status.total_machines) == (2, 2)

    await eventually(two_ready, timeout=15, what="2 of 2 ready")

    # Deleting the cluster removes its machines (each drained) and then the LCM objects.
    assert await lcm.store.delete(Cluster, "del", NS) is not None
    await eventually(lambda: lcm.gone(Cluster, "del"), timeout=30, what="cluster gone")
    for n in ("del-cp0", "del-w0"):
        assert await lcm.gone(Machine, n) and await lcm.gone(LCMMachine, n)
        assert (n, "Drained") in lcm.provider.deprovisioned
    assert await lcm.gone(LCMCluster, "del")
    # Its health check goes with it, once LCM took its finalizer off.
    await eventually(lambda: lcm.gone(MachineHealthCheck, "del-hc"), what="health check gone")
