"""MachinePool reconciles against the real embedded store (nats-server): what a pass makes,
deletes and reports, called directly so each pass is one step of the test.

The end-to-end behaviour (LCM, the simulated provider and agents making the Machines
Ready; the bus waking the pool) is in ``test_machine_pool_fleet.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from services.lcm.pool import (
    FINALIZER,
    MachinePoolReconciler,
    Moves,
    machine_for,
    moves,
    surplus,
    template_hash,
)
from shared.bus import event_for
from shared.models import (
    CLUSTER_LABEL,
    DELETE_MACHINE_ANNOTATION,
    POOL_LABEL,
    POOL_TEMPLATE_ANNOTATION,
    Cluster,
    Machine,
    MachinePool,
    convert,
)
from shared.models.fit import misfit
from shared.runtime import Request, TransientError
from shared.runtime import conditions as cond
from shared.store import NotFound
from shared.store.kv import KVStore

NS = "team-a"


async def add_cluster(store: KVStore, name: str = "c1", *, provider: str = "simulated",
                      region: str = "local") -> Cluster:
    return await store.create(convert(Cluster, {
        "metadata": {"name": name, "namespace": NS},
        "spec": {"region": region, "provider": provider, "release": "mke-3-7-1"}}))


async def add_pool(store: KVStore, name: str = "workers", *, cluster: str = "c1",
                   replicas: int = 2, **spec: Any) -> MachinePool:
    return await store.create(convert(MachinePool, {
        "metadata": {"name": name, "namespace": NS},
        "spec": {"cluster": cluster, "region": "local", "replicas": replicas,
                 "template": {"metadata": {"labels": {"tier": "web"}},
                              "spec": {"simulated": {"flavor": "large"},
                                       "nodeLabels": {"pool": name}}}} | spec}))


async def pool_machines(store: KVStore, pool: str = "workers") -> list[Machine]:
    return await store.list_all(Machine, NS, label_selector=f"{POOL_LABEL}={pool}",
                                where=lambda m: not m.deleting)


async def names(store: KVStore, pool: str = "workers") -> list[str]:
    return [m.metadata.name for m in await pool_machines(store, pool)]


async def set_replicas(store: KVStore, n: int, pool: str = "workers") -> None:
    p = await store.get(MachinePool, pool, NS)
    p.spec.replicas = n
    await store.update(p)


async def make_ready(store: KVStore, name: str) -> None:
    m = await store.get(Machine, name, NS)
    cond.mark_true(m.status, "Ready", "Ready")
    await store.update_status(m)


async def test_a_pool_makes_its_machines_from_the_template_once(kv_store: KVStore) -> None:
    store = kv_store
    await add_cluster(store)
    pool = await add_pool(store, replicas=3)
    rec = MachinePoolReconciler(store)
    await rec.reconcile(Request("workers", NS))
    await rec.reconcile(Request("workers", NS))  # a repeat (an event delivered twice)
    await MachinePoolReconciler(store).reconcile(Request("workers", NS))  # a restart
    machines = await pool_machines(store)
    assert sorted(m.metadata.name for m in machines) == ["workers-0", "workers-1", "workers-2"]
    m = machines[0]
    assert m.spec.cluster == "c1" and m.spec.region == "local" and m.spec.role == "worker"
    assert m.spec.simulated is not None and m.spec.simulated.flavor == "large"
    assert m.spec.node_labels == {"pool": "workers"}
    assert m.metadata.labels == {"tier": "web", POOL_LABEL: "workers", CLUSTER_LABEL: "c1"}
    assert m.metadata.annotations[POOL_TEMPLATE_ANNOTATION] == template_hash(pool)
    (owner,) = m.metadata.owner_references
    assert (owner.kind, owner.uid, owner.controller) == ("MachinePool", pool.metadata.uid, True)
    st = (await store.get(MachinePool, "workers", NS)).status
    assert (st.replicas, st.ready_replicas, st.updated_replicas) == (3, 0, 3)
    assert st.selector == f"{POOL_LABEL}=workers" and st.phase == "ScalingUp"
    ready = cond.get(st, "Ready")
    assert ready is not None and ready.reason == "WaitingForMachines"
    assert "0 of 3" in ready.message and "workers-0" in ready.message
    m1 = await store.get(Machine, "workers-1", NS)  # as the provider says it waits
    cond.mark_false(m1.status, "Ready", "NoCapacity", "no free host", "Warning")
    await store.update_status(m1)
    await rec.reconcile(Request("workers", NS))
    ready = cond.get((await store.get(MachinePool, "workers", NS)).status, "Ready")
    assert ready is not None and "workers-1 (NoCapacity)" in ready.message, ready
    assert FINALIZER in (await store.get(MachinePool, "workers", NS)).metadata.finalizers


async def test_a_name_someone_else_holds_is_skipped_and_their_machine_not_counted(
    kv_store: KVStore,
) -> None:
    store = kv_store
    await add_cluster(store)
    await add_cluster(store, "c2")
    await store.create(convert(Machine, {  # a hand-made Machine with the pool's first name
        "metadata": {"name": "workers-0", "namespace": NS},
        "spec": {"cluster": "c1", "region": "local", "simulated": {}}}))
    await store.create(convert(Machine, {  # the pool's label, in another cluster
        "metadata": {"name": "stray", "namespace": NS, "labels": {POOL_LABEL: "workers"}},
        "spec": {"cluster": "c2", "region": "local", "simulated": {}}}))
    await add_pool(store, replicas=2)
    await MachinePoolReconciler(store).reconcile(Request("workers", NS))
    mine = await store.list_all(Machine, NS, label_selector=f"{POOL_LABEL}=workers",
                                where=lambda m: m.spec.cluster == "c1")
    assert sorted(m.metadata.name for m in mine) == ["workers-1", "workers-2"]
    assert (await store.get(MachinePool, "workers", NS)).status.replicas == 2


async def test_scaling_down_takes_marked_then_outdated_then_unready_then_newest(
    kv_store: KVStore,
) -> None:
    store = kv_store
    await add_cluster(store)
    await add_pool(store, replicas=5)
    rec = MachinePoolReconciler(store)
    await rec.reconcile(Request("workers", NS))
    for n in ("workers-0", "workers-1", "workers-2", "workers-3"):
        await make_ready(store, n)  # workers-4 is not Ready
    m1 = await store.get(Machine, "workers-1", NS)
    m1.metadata.annotations[DELETE_MACHINE_ANNOTATION] = "true"
    await store.update(m1)

    await set_replicas(store, 4)
    await rec.reconcile(Request("workers", NS))
    assert await names(store) == ["workers-0", "workers-2", "workers-3", "workers-4"]

    await set_replicas(store, 3)
    await rec.reconcile(Request("workers", NS))
    assert await names(store) == ["workers-0", "workers-2", "workers-3"], "the unready one"

    await set_replicas(store, 2)
    await rec.reconcile(Request("workers", NS))
    assert await names(store) == ["workers-0", "workers-2"], "the newest"
    st = (await store.get(MachinePool, "workers", NS)).status
    assert (st.replicas, st.ready_replicas, st.phase) == (2, 2, "Running")
    assert cond.is_true(st, "Ready")


def test_the_oldest_policy_and_an_older_template_order_the_surplus() -> None:
    def machine(name: str, created: str, template: str = "new", ready: bool = True) -> Machine:
        m = convert(Machine, {
            "metadata": {"name": name, "namespace": NS, "creationTimestamp": created,
                         "annotations": {POOL_TEMPLATE_ANNOTATION: template}},
            "spec": {"cluster": "c1", "region": "local"}})
        if ready:
            cond.mark_true(m.status, "Ready", "Ready")
        return m

    pool = convert(MachinePool, {"metadata": {"name": "p", "namespace": NS},
                                 "spec": {"cluster": "c1", "region": "local",
                                          "deletePolicy": "Oldest"}})
    live = [machine("p-0", "2026-01-01T00:00:00Z"), machine("p-10", "2026-01-03T00:00:00Z"),
            machine("p-2", "2026-01-02T00:00:00Z"),
            machine("p-3", "2026-01-04T00:00:00Z", template="old")]
    assert [m.metadata.name for m in surplus(pool, live, 3, "new")] == ["p-3", "p-0", "p-2"]
    pool.spec.delete_policy = "Newest"
    assert [m.metadata.name for m in surplus(pool, live, 2, "new")] == ["p-3", "p-10"]


async def test_a_template_change_applies_to_machines_made_after_it(kv_store: KVStore) -> None:
    store = kv_store
    await add_cluster(store)
    await add_pool(store, replicas=1)
    rec = MachinePoolReconciler(store)
    await rec.reconcile(Request("workers", NS))
    pool = await store.get(MachinePool, "workers", NS)
    old = template_hash(pool)
    pool.spec.template.spec.simulated = msgspec.structs.replace(
        pool.spec.template.spec.simulated, flavor="xlarge")
    pool.spec.replicas = 2
    pool = await store.update(pool)
    await rec.reconcile(Request("workers", NS))
    w0, w1 = await store.get(Machine, "workers-0", NS), await store.get(Machine, "workers-1", NS)
    assert w0.spec.simulated.flavor == "large" and w1.spec.simulated.flavor == "xlarge"
    assert w0.metadata.annotations[POOL_TEMPLATE_ANNOTATION] == old != template_hash(pool)
    st = (await store.get(MachinePool, "workers", NS)).status
    assert (st.replicas, st.updated_replicas) == (2, 1)
    assert st.observed_generation == pool.metadata.generation


@pytest.mark.parametrize(("cluster", "provider", "region", "reason"), [
    ("nowhere", "simulated", "local", "ClusterNotFound"),
    ("c1", "openstack", "local", "TemplateInvalid"),  # simulated section under OpenStack
    ("c1", "simulated", "dc2", "RegionMismatch"),
])
async def test_a_pool_that_cannot_fit_its_cluster_makes_nothing_and_says_why(
    kv_store: KVStore, cluster: str, provider: str, region: str, reason: str,
) -> None:
    store = kv_store
    await add_cluster(store, provider=provider, region=region)
    await add_pool(store, cluster=cluster, replicas=2)
    await MachinePoolReconciler(store).reconcile(Request("workers", NS))
    assert await names(store) == []
    st = (await store.get(MachinePool, "workers", NS)).status
    ready = cond.get(st, "Ready")
    assert ready is not None and ready.status == "False" and ready.reason == reason
    assert st.phase == "Pending"


async def test_a_cluster_made_after_its_pool_wakes_it(kv_store: KVStore) -> None:
    store = kv_store
    rec = MachinePoolReconciler(store)
    await add_pool(store, replicas=1)
    await rec.reconcile(Request("workers", NS))
    cluster = await add_cluster(store)
    assert rec.pools_of_cluster(event_for("ADDED", cluster)) == [Request("workers", NS)]
    await rec.reconcile(Request("workers", NS))
    assert await names(store) == ["workers-0"]


async def test_a_deleted_pool_deletes_its_machines_and_goes_once_they_are_gone(
    kv_store: KVStore,
) -> None:
    store = kv_store
    await add_cluster(store)
    await add_pool(store, replicas=2)
    rec = MachinePoolReconciler(store)
    await rec.reconcile(Request("workers", NS))
    for n in ("workers-0", "workers-1"):  # as the provider's and LCM's would
        m = await store.get(Machine, n, NS)
        m.metadata.finalizers.append("test/node")
        await store.update(m)
    await store.delete(MachinePool, "workers", NS)
    with pytest.raises(TransientError):
        await rec.reconcile(Request("workers", NS))
    pool = await store.get(MachinePool, "workers", NS)
    assert pool.status.phase == "Deleting"
    assert all(m.deleting for m in await store.list_all(Machine, NS))
    for n in ("workers-0", "workers-1"):  # the nodes are gone: the finalizers let go
        m = await store.get(Machine, n, NS)
        m.metadata.finalizers.remove("test/node")
        await store.update(m)
    await rec.reconcile(Request("workers", NS))
    with pytest.raises(NotFound):
        await store.get(MachinePool, "workers", NS)
    assert rec.pools_of_cluster(event_for("MODIFIED", await store.get(Cluster, "c1", NS))) == []


def test_the_example_pool_reads_as_documented() -> None:
    path = Path(__file__).resolve().parents[2] / "examples/machine-pool/workers.yaml"
    pool = convert(MachinePool, yaml.safe_load(path.read_text()))
    assert (pool.spec.cluster, pool.spec.region, pool.spec.replicas) == ("demo", "local", 1)
    pool.metadata.uid = "as-stored"
    m = machine_for(pool, "demo-pool-0", template_hash(pool))
    assert m.spec.role == "worker" and m.spec.update_group == "demo-workers"
    assert misfit(pool.spec.template.spec, "baremetal") is None


@pytest.mark.parametrize(("surge", "unavailable"), [(1, 0), (0, 1), (2, 1), (0, 3)])
def test_a_rolling_update_replaces_every_machine_within_its_bounds(
    surge: int, unavailable: int,
) -> None:
    """``moves`` over a simulated pool: each pass's step applied, then the machines made
    become Ready (as they deploy), until the pool settles. Never more than maxSurge machines
    beyond replicas, never fewer than replicas - maxUnavailable Ready ones, and it ends
    with replicas machines, all of the current template."""
    pool = convert(MachinePool, {
        "metadata": {"name": "p", "namespace": NS},
        "spec": {"cluster": "c1", "region": "local", "replicas": 3, "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}})
    made = 0

    def machine(template: str) -> Machine:
        nonlocal made
        m = convert(Machine, {
            "metadata": {"name": f"p-{made}", "namespace": NS,
                         "creationTimestamp": f"2026-01-01T00:00:{made:02d}Z",
                         "annotations": {POOL_TEMPLATE_ANNOTATION: template}},
            "spec": {"cluster": "c1", "region": "local"}})
        made += 1
        return m

    def ready(m: Machine) -> Machine:
        cond.mark_true(m.status, "Ready", "Ready")
        return m

    live = [ready(machine("old")) for _ in range(3)]
    for _ in range(20):
        step = moves(pool, live, "new")
        if not step.make and not step.delete:
            break
        gone = {m.metadata.name for m in step.delete}
        live = [m for m in live if m.metadata.name not in gone]
        assert sum(cond.is_true(m.status, "Ready") for m in live) >= 3 - unavailable
        live += [machine("new") for _ in range(step.make)]
        assert len(live) <= 3 + surge
        live = [ready(m) for m in live]  # the new ones deploy
    else:
        raise AssertionError("the rollout did not settle")
    assert len(live) == 3
    assert all(m.metadata.annotations[POOL_TEMPLATE_ANNOTATION] == "new" for m in live)


def test_a_rolling_update_takes_old_machines_that_are_not_ready_first_and_for_free() -> None:
    pool = convert(MachinePool, {
        "metadata": {"name": "p", "namespace": NS},
        "spec": {"cluster": "c1", "region": "local", "replicas": 2,
                 "strategy": {"type": "RollingUpdate"}}})  # maxSurge 1, maxUnavailable 0
    old = [convert(Machine, {
        "metadata": {"name": f"p-{i}", "namespace": NS,
                     "annotations": {POOL_TEMPLATE_ANNOTATION: "old"}},
        "spec": {"cluster": "c1", "region": "local"}}) for i in range(2)]
    cond.mark_true(old[0].status, "Ready", "Ready")
    step = moves(pool, old, "new")
    assert step.make == 1 and [m.metadata.name for m in step.delete] == ["p-1"]
    assert moves(pool.__class__(metadata=pool.metadata, spec=msgspec.structs.replace(
        pool.spec, strategy=msgspec.structs.replace(pool.spec.strategy, type="OnDelete"))),
        old, "new") == Moves(), "OnDelete leaves them"
