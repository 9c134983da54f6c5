"""MachinePool end to end: real store and bus, every LCM controller, the simulated provider
and the fleet of simulated agents (``tests/lcm/remediation.py``).

A pool's Machines get nodes, deploy and make the pool Ready, woken by events only; scaling
up adds nodes that join the running cluster, scaling down removes the surplus through
their own drain-and-delete flow (their nodes are deleted at the provider); deleting the
Cluster takes its pool and the pool's Machines with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from shared.models import POOL_LABEL, Cluster, Machine, MachinePool, convert
from shared.runtime import conditions as cond
from shared.store import NotFound
from tests.lcm.remediation import NS, REGION, Region, region
from tests.waiting import eventually

TIMEOUT = 60


@pytest.fixture
async def env(nc: NATS, prefix: str, tmp_path: Path) -> AsyncIterator[Region]:
    async with region(nc, prefix, tmp_path / "nodes") as r:
        yield r


async def pool_state(env: Region) -> tuple[int, int, int, bool]:
    p = await env.store.get(MachinePool, "workers", NS)
    return (p.spec.replicas, p.status.replicas, p.status.ready_replicas,
            cond.is_true(p.status, "Ready"))


async def settled(env: Region, replicas: int) -> bool:
    """The pool and its cluster are Ready with exactly ``replicas`` pool machines."""
    live = await env.store.list_all(Machine, NS, label_selector=f"{POOL_LABEL}=workers")
    return (await pool_state(env) == (replicas, replicas, replicas, True)
            and len(live) == replicas and await env.ready("one")
            and (await env.store.get(Cluster, "one", NS)).status.total_machines == replicas + 1)


async def scale(env: Region, replicas: int) -> None:
    p = await env.store.get(MachinePool, "workers", NS)
    p.spec.replicas = replicas
    await env.store.update(p)


async def test_a_pool_deploys_scales_and_goes_with_its_cluster(env: Region) -> None:
    await env.create_cluster("one", workers=0)
    await env.store.create(convert(MachinePool, {
        "metadata": {"name": "workers", "namespace": NS},
        "spec": {"cluster": "one", "region": REGION, "replicas": 2,
                 "template": {"spec": {"simulated": {}}}}}))
    await eventually(lambda: settled(env, 2), timeout=TIMEOUT, interval=0.2,
                     what="two pool machines Ready")

    await scale(env, 3)
    await eventually(lambda: settled(env, 3), timeout=TIMEOUT, interval=0.2,
                     what="three pool machines Ready")
    uids = {m.metadata.name: m.metadata.uid for m in await env.store.list_all(Machine, NS)}

    await scale(env, 1)
    await eventually(lambda: settled(env, 1), timeout=TIMEOUT, interval=0.2,
                     what="one pool machine left")
    (kept,) = await env.store.list_all(Machine, NS, label_selector=f"{POOL_LABEL}=workers")
    assert kept.metadata.name == "workers-0", "the newest go first"
    for gone in ("workers-1", "workers-2"):  # their nodes were deleted at the provider
        assert await env.nodes.get(uids[gone] or "") is None

    await env.store.delete(Cluster, "one", NS)

    async def all_gone() -> bool:
        for cls, name in ((Cluster, "one"), (MachinePool, "workers")):
            try:
                await env.store.get(cls, name, NS)
                return False
            except NotFound:
                pass
        return await env.store.list_all(Machine, NS) == []

    await eventually(all_gone, timeout=TIMEOUT, interval=0.2, what="cluster, pool, machines")


async def test_a_health_check_replaces_a_hung_pool_machine(env: Region) -> None:
    """MachineHealthCheck with the Replace strategy over a pool: the hung machine is
    deleted (its node with it), the pool makes a new one, and the pool is whole again."""
    await env.create_cluster("one", workers=0)
    await env.store.create(convert(MachinePool, {
        "metadata": {"name": "workers", "namespace": NS},
        "spec": {"cluster": "one", "region": REGION, "replicas": 2,
                 "template": {"spec": {"simulated": {}}}}}))
    await env.create_check("one", maxUnhealthy=1, remediation={"strategy": "Replace"},
                           selector={"matchLabels": {POOL_LABEL: "workers"}},
                           unhealthyConditions=[{"type": "Ready", "status": "False",
                                                 "timeoutSeconds": 2}])
    await eventually(lambda: settled(env, 2), timeout=TIMEOUT, interval=0.2,
                     what="two pool machines Ready")
    hung = await env.machine("workers-0")
    await env.fleet.hang("workers-0")

    async def replaced() -> bool:  # the pool reuses the lowest free name
        try:
            return (await env.machine("workers-0")).metadata.uid != hung.metadata.uid
        except NotFound:
            return False

    await eventually(replaced, timeout=TIMEOUT, interval=0.2, what="workers-0 replaced")
    assert await env.nodes.get(hung.metadata.uid or "") is None, "its node was deleted"
    env.fleet.repair("workers-0")  # the new node's agent is not the hung one
    await eventually(lambda: settled(env, 2), timeout=TIMEOUT, interval=0.2,
                     what="the pool whole again")
    pool = sorted(m.metadata.name for m in await env.store.list_all(
        Machine, NS, label_selector=f"{POOL_LABEL}=workers"))
    assert pool == ["workers-0", "workers-1"]
    assert (await env.check()).status.targets == []


async def test_a_rolling_update_replaces_the_pools_machines(env: Region) -> None:
    await env.create_cluster("one", workers=0)
    await env.store.create(convert(MachinePool, {
        "metadata": {"name": "workers", "namespace": NS},
        "spec": {"cluster": "one", "region": REGION, "replicas": 2,
                 "strategy": {"type": "RollingUpdate"},  # one extra machine at a time
                 "template": {"spec": {"simulated": {"flavor": "small"}}}}}))
    await eventually(lambda: settled(env, 2), timeout=TIMEOUT, interval=0.2,
                     what="two pool machines Ready")
    old = {m.metadata.uid for m in await env.store.list_all(Machine, NS)
           if POOL_LABEL in m.metadata.labels}
    p = await env.store.get(MachinePool, "workers", NS)
    p.spec.template.spec.simulated.flavor = "large"
    await env.store.update(p)

    async def rolled() -> bool:
        pool = await env.store.list_all(Machine, NS, label_selector=f"{POOL_LABEL}=workers")
        st = (await env.store.get(MachinePool, "workers", NS)).status
        return (await settled(env, 2) and st.updated_replicas == 2
                and all(m.spec.simulated.flavor == "large" for m in pool))

    await eventually(rolled, timeout=TIMEOUT, interval=0.2, what="both machines replaced")
    for uid in old:  # the old machines' nodes are gone
        assert await env.nodes.get(uid or "") is None
