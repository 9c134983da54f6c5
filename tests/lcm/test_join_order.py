"""Every node joins MKE right the first time: the manager (the first control-plane node)
installs it, whatever its address; the others' LCMMachines wait for that address, and the
cluster says so meanwhile. Neither is reconfigured once the address appears."""

from __future__ import annotations

from shared.models import (
    Cluster,
    ClusterSpec,
    LCMCluster,
    LCMMachine,
    Machine,
    MachineSpec,
    ObjectMeta,
    SimulatedMachineSpec,
)
from shared.models.kinds import MachineRole
from shared.runtime import conditions as cond
from tests.lcm.conftest import NS, PROVIDER_FINALIZER, REGION, Lcm
from tests.lcm.test_upgrade import deployed
from tests.waiting import eventually


async def new_machine(lcm: Lcm, cluster: Cluster, name: str, role: MachineRole) -> Machine:
    """A Machine of ``cluster`` the test's provider has not provisioned yet."""
    return await lcm.store.create(Machine(
        metadata=ObjectMeta(name=name, namespace=NS, finalizers=[PROVIDER_FINALIZER],
                            owner_references=[cluster.owner_ref()]),
        spec=MachineSpec(cluster=cluster.metadata.name, role=role, region=REGION,
                         simulated=SimulatedMachineSpec()),
    ))


def join_of(lm: LCMMachine | None) -> str | None:
    """The manager address ``lm``'s join item names ("" for the manager: it installs)."""
    if lm is None:
        return None
    return next(i for i in lm.spec.state_items if i.name == "mke-join").params["manager"]


async def test_worker_lcm_machine_waits_for_a_manager_address(lcm: Lcm) -> None:
    cluster = await lcm.store.create(Cluster(
        metadata=ObjectMeta(name="late", namespace=NS),
        spec=ClusterSpec(region=REGION, provider="simulated", release="mke-3-7-1"),
    ))
    machines = {name: await new_machine(lcm, cluster, name, role)
                for name, role in (("late-cp0", "control-plane"), ("late-w0", "worker"))}
    # The worker's node is up; the control plane's has no address yet.
    await lcm.provider.provision(machines["late-w0"], 2)

    async def waiting() -> str:
        ready = cond.get((await lcm.cluster("late")).status, "MachinesReady")
        return ready.message if ready is not None and "address" in ready.message else ""

    message = await eventually(waiting, what="the cluster saying the worker waits")
    assert message == "0 of 2 machines ready; 1 waits for a control-plane node's address " \
                      "to join through"
    assert await lcm.find(LCMMachine, "late-cp0") is not None
    assert await lcm.find(LCMMachine, "late-w0") is None

    await lcm.provider.provision(await lcm.store.get(Machine, "late-cp0", NS), 1)
    worker = await eventually(lambda: lcm.find(LCMMachine, "late-w0"), what="worker LCMMachine")
    assert join_of(worker) == "10.250.0.1"

    await lcm.start_agent("late-cp0")
    await lcm.start_agent("late-w0")
    await eventually(lambda: lcm.ready("late"), timeout=30, what="cluster Ready")
    # Created with the right manager, neither node needed a second spec: the manager's
    # items never named its own address.
    assert (await lcm.lcm_machine("late-w0")).metadata.generation == 1
    manager = await lcm.lcm_machine("late-cp0")
    assert manager.metadata.generation == 1
    assert join_of(manager) == ""
    assert (lcm.root("late-cp0") / "etc/ccloud/mke").read_text().split() == ["manager", "3.7.1"]


async def test_a_manager_with_no_node_yields_to_a_control_plane_node_that_has_one(
    lcm: Lcm,
) -> None:
    cluster = await lcm.store.create(Cluster(
        metadata=ObjectMeta(name="swap", namespace=NS),
        spec=ClusterSpec(region=REGION, provider="simulated", release="mke-3-7-1"),
    ))
    machines = {name: await new_machine(lcm, cluster, name, role)
                for name, role in (("swap-cp0", "control-plane"), ("swap-cp1", "control-plane"),
                                   ("swap-w0", "worker"))}
    # The first control-plane node is chosen while no node has an address ...
    first = await eventually(lambda: lcm.find(LCMMachine, "swap-cp0"), what="cp0 LCMMachine")
    assert join_of(first) == ""
    # ... but never gets one; the second does, and everyone joins through it.
    await lcm.provider.provision(machines["swap-cp1"], 7)
    await lcm.provider.provision(machines["swap-w0"], 8)

    async def joins() -> dict[str, str | None]:
        found = {n: join_of(await lcm.find(LCMMachine, n)) for n in machines}
        return found if found["swap-w0"] is not None and found["swap-cp0"] else {}

    assert await eventually(joins, what="every node joining through cp1") == {
        "swap-cp0": "10.250.0.7", "swap-cp1": "", "swap-w0": "10.250.0.7"}


async def test_nodes_that_joined_stay_joined_when_the_manager_is_deleted(lcm: Lcm) -> None:
    names = await lcm.create_cluster("mgr", release="mke-3-7-1", cps=2, workers=1)
    await deployed(lcm, "mgr", names, "mke-3-7-1")
    lcc = await lcm.store.get(LCMCluster, "mgr", NS)
    assert (lcc.status.manager_machine, lcc.status.manager_address) == ("mgr-cp0", "10.250.0.1")
    before = {n: await lcm.lcm_machine(n) for n in ("mgr-cp1", "mgr-w0")}

    await lcm.store.delete(Machine, "mgr-cp0", NS)

    async def new_manager() -> bool:
        s = (await lcm.store.get(LCMCluster, "mgr", NS)).status
        return (s.manager_machine, s.manager_address) == ("mgr-cp1", "10.250.0.2")

    await eventually(new_manager, timeout=20, what="cp1 the cluster's manager")
    await eventually(lambda: lcm.gone(LCMMachine, "mgr-cp0"), timeout=20, what="cp0 gone")
    # A node added now joins through the new manager ...
    added = await new_machine(lcm, await lcm.cluster("mgr"), "mgr-w1", "worker")
    await lcm.provider.provision(added, 4)
    joined = await eventually(lambda: lcm.find(LCMMachine, "mgr-w1"), what="w1 LCMMachine")
    assert join_of(joined) == "10.250.0.2"
    await lcm.start_agent("mgr-w1")
    await eventually(lambda: lcm.ready("mgr"), timeout=30, what="Ready with the new worker")
    # ... while the nodes that had joined were left as they were: no second join.
    for n, lm in before.items():
        after = await lcm.lcm_machine(n)
        assert after.metadata.generation == lm.metadata.generation, n
        assert after.spec.state_items == lm.spec.state_items, n
        assert (lcm.root(n) / "etc/ccloud/mke-manager").read_text().strip() == "10.250.0.1"
