"""Create the management cluster's objects and drive them through the simulated provider.

A minimal stand-in for the regional LCM + provider services inside the bootstrap set: it
writes the Region, the Cluster and its control-plane Machines (owned by the Cluster), then
for each Machine asks the provider for a node, powers it on, waits until the provider
reports it running and records providerID and addresses in the Machine's status, and
finally marks the Cluster ready. Every step is keyed by the Machine's uid and reads the
store first, so running it again (resume) finishes the job without making anything twice.
"""

from __future__ import annotations

import asyncio
import time

import msgspec

from services.bootstrap.state import BootstrapError, Target
from services.providers.contract import NodeRequest
from services.providers.simulated import SimulatedProvider
from shared.models import Cluster, Machine, ObjectMeta, Region, now
from shared.models.kinds import (
    ClusterSpec,
    ClusterStatus,
    MachineSpec,
    MachineStatus,
    RegionSpec,
    SimulatedMachineSpec,
)
from shared.models.meta import Condition
from shared.store import AlreadyExists, Store

BOOTSTRAP_LABEL = "kaas.containercloud.dev/bootstrap"
NODE_TIMEOUT = 60.0


async def _ensure(store: Store, obj):  # noqa: ANN001, ANN202 - any kind
    try:
        return await store.create(obj)
    except AlreadyExists:
        return await store.get(type(obj), obj.metadata.name, obj.metadata.namespace)


def _ready(reason: str) -> list[Condition]:
    return [Condition(type="Ready", status="True", reason=reason, last_transition_time=now())]


async def create_management_cluster(
    store: Store, provider: SimulatedProvider, target: Target
) -> Cluster:
    labels = {BOOTSTRAP_LABEL: "true"}
    await _ensure(store, Region(
        metadata=ObjectMeta(name=target.region, labels=labels),
        spec=RegionSpec(providers=["simulated"], description="created by bootstrap"),
    ))
    cluster = await _ensure(store, Cluster(
        metadata=ObjectMeta(name=target.cluster, namespace=target.namespace, labels=labels),
        spec=ClusterSpec(region=target.region, provider="simulated", release=target.release,
                         description="management cluster"),
    ))
    machines = []
    for i in range(target.machines):
        machines.append(await _ensure(store, Machine(
            metadata=ObjectMeta(
                name=f"{target.cluster}-cp-{i}", namespace=target.namespace, labels=labels,
                owner_references=[cluster.owner_ref()],
            ),
            spec=MachineSpec(cluster=target.cluster, role="control-plane", region=target.region,
                             simulated=SimulatedMachineSpec()),
        )))
    await asyncio.gather(*(_provision(store, provider, m) for m in machines))
    cluster = await store.get(Cluster, cluster.metadata.name, cluster.metadata.namespace)
    if cluster.status.phase != "Ready":
        cluster = await store.update_status(msgspec.structs.replace(cluster, status=ClusterStatus(
            phase="Ready", release=target.release, ready_machines=len(machines),
            total_machines=len(machines), conditions=_ready("MachinesReady"),
            observed_generation=cluster.metadata.generation,
        )))
    return cluster


async def _provision(store: Store, provider: SimulatedProvider, machine: Machine) -> None:
    if machine.status.phase == "Ready":
        return
    ref = await provider.create(NodeRequest.from_machine(machine, "simulated"))
    await provider.power(ref, on=True)
    deadline = time.monotonic() + NODE_TIMEOUT
    while True:
        st = await provider.status(ref)
        if st.running and st.addresses:
            break
        if time.monotonic() > deadline:
            raise BootstrapError(f"machine {machine.metadata.name}: node not running in time")
        await asyncio.sleep(0.05)
    current = await store.get(Machine, machine.metadata.name, machine.metadata.namespace)
    await store.update_status(msgspec.structs.replace(current, status=MachineStatus(
        phase="Ready", provider_id=ref.provider_id, node_name=ref.name,
        addresses=list(st.addresses), conditions=_ready("NodeRunning"),
        observed_generation=current.metadata.generation,
    )))


async def delete_nodes(store: Store, provider: SimulatedProvider) -> int:
    """Release every node the bootstrap's Machines hold (rollback)."""
    released = 0
    for machine in await store.list_all(Machine):
        ref = await provider.find(NodeRequest.from_machine(machine, "simulated"))
        if ref is not None:
            await provider.delete(ref)
            released += 1
    return released
