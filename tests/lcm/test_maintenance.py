"""Maintenance mode with real agents: a Machine in maintenance has its node cordoned and
drained and gets nothing new from LCM; a Cluster in maintenance starts no upgrade, and a
held upgrade passes by a machine still in maintenance until it leaves it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

from services.lcm.rollout import MachineView, plan, state_of
from shared.models import Cluster, LCMCluster, LCMMachine, Machine, MachineStatus, Resource
from shared.models.meta import Condition
from shared.runtime import conditions as cond
from shared.store import Conflict
from tests.lcm.conftest import NS, Lcm
from tests.lcm.test_cordon_failure import PDB, fail_file
from tests.lcm.test_upgrade import deployed, node_log, set_release, upgraded
from tests.waiting import eventually

R = TypeVar("R", bound=Resource)


async def edit(lcm: Lcm, cls: type[R], name: str, mutate: Callable[[R], None]) -> None:
    """A spec write straight to the store (as a controller-less client would make it)."""
    for _ in range(10):
        obj = await lcm.store.get(cls, name, NS)
        mutate(obj)
        with contextlib.suppress(Conflict):
            await lcm.store.update(obj)
            return
    raise AssertionError(f"could not update {cls.KIND} {name}")


async def maintenance(lcm: Lcm, cls: type[Cluster] | type[Machine], name: str, on: bool) -> None:
    def mutate(obj: Cluster | Machine) -> None:
        obj.spec.maintenance = on

    await edit(lcm, cls, name, mutate)


def condition_of(lcm: Lcm, cls: type[Resource], name: str, type_: str,
                 check: Callable[[Condition], bool]) -> Callable[[], object]:
    """A probe: the condition ``type_`` of ``name`` once ``check`` accepts it."""
    async def probe() -> Condition | None:
        c = cond.get((await lcm.store.get(cls, name, NS)).status, type_)
        return c if c is not None and check(c) else None
    return probe


def node_state(lcm: Lcm, name: str) -> str:
    return (lcm.root(name) / "var/lib/ccloud/node-state").read_text().strip()


def test_a_rollout_passes_by_machines_in_maintenance() -> None:
    """Whatever its node reports, a machine in maintenance is neither started, nor in
    flight, nor a failure stopping the rollout; the others go on without it."""
    for spec_release, status_release, cordoned in (("r0", "r0", False), ("r0", "r0", True),
                                                   ("r1", "r0", True), ("r1", "r1", True)):
        assert state_of(spec_release=spec_release, status_release=status_release,
                        target="r1", spec_cordoned=cordoned, status_cordoned=cordoned,
                        maintenance=True) == "maintenance"
    p = plan([
        MachineView("cp0", "control-plane", "maintenance",
                    failure="cordon and drain failed: PDB"),
        MachineView("cp1", "control-plane", "waiting"),
        MachineView("w0", "worker", "waiting"),
    ], {})
    assert (p.start, p.in_flight, p.waiting, p.failed) == (["cp1"], [], ["cp1", "w0"], [])


def test_a_running_machine_in_maintenance_shows_it_whoever_writes() -> None:
    """The provider writes Running, LCM the Maintenance condition: the Machine's derived
    phase and Ready show maintenance, except over a provider error or a node being
    deleted, and go back to Running once the condition is gone."""
    st = MachineStatus(phase="Running")
    cond.mark_true(st, "ProviderReady", "Running")
    cond.mark_true(st, "LCMReady", "Ready")
    cond.mark_true(st, "Maintenance", "Drained", "the node is drained")
    cond.summarize_machine(st)
    ready = cond.get(st, "Ready")
    assert st.phase == "Maintenance"
    assert (ready.status, ready.reason, ready.message) == (
        "False", "Maintenance", "in maintenance: the node is drained")
    st.phase = "Running"  # the provider's next pass
    cond.summarize_machine(st)
    assert st.phase == "Maintenance"
    cond.mark_false(st, "ProviderReady", "PowerFailed", "BMC: power on failed", "Error")
    cond.summarize_machine(st)
    assert cond.get(st, "Ready").reason == "PowerFailed"
    cond.mark_true(st, "ProviderReady", "Running")
    st.phase = "Deleting"
    cond.summarize_machine(st)
    assert st.phase == "Deleting"
    st.phase = "Maintenance"
    cond.remove(st, "Maintenance")
    cond.summarize_machine(st)
    assert st.phase == "Running" and cond.is_true(st, "Ready")


async def test_a_machine_in_maintenance_is_drained_left_alone_and_uncordoned_after(
    lcm: Lcm,
) -> None:
    names = await lcm.create_cluster("mt", release="mke-3-7-1", cps=1, workers=2)
    await deployed(lcm, "mt", names, "mke-3-7-1")

    await maintenance(lcm, Cluster, "mt", True)
    c = await eventually(condition_of(lcm, Cluster, "mt", "Maintenance",
                                      lambda c: c.status == "True"), what="cluster Maintenance")
    assert c.message == "0 of 3 machines in maintenance"

    # Into maintenance: LCM cordons the node, the agent drains it and acks.
    await maintenance(lcm, Machine, "mt-w0", True)
    c = await eventually(condition_of(lcm, Machine, "mt-w0", "Maintenance",
                                      lambda c: c.status == "True"),
                         timeout=20, what="mt-w0 drained for maintenance")
    assert c.reason == "Drained"
    lm = await lcm.lcm_machine("mt-w0")
    assert lm.spec.cordoned and lm.status.cordoned
    assert node_state(lcm, "mt-w0") == "cordoned"
    m = await lcm.store.get(Machine, "mt-w0", NS)
    assert m.status.phase == "Maintenance"
    ready = cond.get(m.status, "Ready")
    assert ready is not None and (ready.status, ready.reason) == ("False", "Maintenance")

    async def counted() -> Cluster | None:
        c = await lcm.cluster("mt")
        up = cond.get(c.status, "Maintenance")
        return c if up is not None and "mt-w0 (drained)" in up.message else None

    c = await eventually(counted, what="the cluster counting mt-w0 in maintenance")
    assert cond.get(c.status, "Maintenance").message == \
        "1 of 3 machines in maintenance: mt-w0 (drained)"
    machines_ready = cond.get(c.status, "MachinesReady")
    assert (machines_ready.reason, machines_ready.message) == (
        "Maintenance", "2 of 3 machines ready; 1 in maintenance")
    assert c.status.phase == "Maintenance" and c.status.ready_machines == 2

    # LCM gives a machine in maintenance nothing new: a role change waits. A node whose
    # drain fails is reported as draining, and is no failure of the cluster.
    generation = lm.metadata.generation

    def promote(obj: Machine) -> None:
        obj.spec.role = "control-plane"

    await edit(lcm, Machine, "mt-w0", promote)
    drain = fail_file(lcm, "mt-w1", "cordon", PDB)
    await maintenance(lcm, Machine, "mt-w1", True)
    c = await eventually(condition_of(lcm, Machine, "mt-w1", "Maintenance",
                                      lambda c: PDB in c.message),
                         timeout=20, what="mt-w1's drain failure")
    assert (c.status, c.reason, c.severity) == ("False", "Draining", "Error")
    assert c.message == f"cordon and drain failed: {PDB}"

    async def both_counted() -> Cluster | None:
        c = await lcm.cluster("mt")
        up = cond.get(c.status, "Maintenance")
        return c if up is not None and "mt-w1 (draining: cordon" in up.message else None

    c = await eventually(both_counted, what="the cluster counting both machines")
    assert cond.get(c.status, "Maintenance").message == (
        "2 of 3 machines in maintenance: mt-w0 (drained), "
        f"mt-w1 (draining: cordon and drain failed: {PDB})")
    assert c.status.phase == "Maintenance", c.status
    assert cond.get(c.status, "MachinesReady").reason == "Maintenance"
    # The pass that saw mt-w1 enter maintenance saw mt-w0's new role too, and held it.
    lm = await lcm.lcm_machine("mt-w0")
    assert (lm.metadata.generation, lm.spec.role) == (generation, "worker")

    drain.unlink()
    await eventually(condition_of(lcm, Machine, "mt-w1", "Maintenance",
                                  lambda c: c.reason == "Drained"),
                     timeout=20, what="mt-w1 drained once the PDB allows it")

    # Out of maintenance: uncordoned, the held role change applied, the condition gone.
    await maintenance(lcm, Machine, "mt-w0", False)
    await maintenance(lcm, Machine, "mt-w1", False)

    async def back(name: str) -> Machine | None:
        m = await lcm.store.get(Machine, name, NS)
        lm = await lcm.lcm_machine(name)
        done = not lm.spec.cordoned and not lm.status.cordoned \
            and lm.status.observed_generation == lm.metadata.generation \
            and cond.is_true(lm.status, "Ready") and cond.is_true(m.status, "Ready")
        return m if done and lm.spec.role == m.spec.role else None

    for name in ("mt-w0", "mt-w1"):
        m = await eventually(lambda n=name: back(n), timeout=30, what=f"{name} back in service")
        assert cond.get(m.status, "Maintenance") is None
        assert m.status.phase == "Running"
        assert node_state(lcm, name) == "schedulable"
    lm = await lcm.lcm_machine("mt-w0")
    assert "addons" in {i.name for i in lm.spec.state_items}  # it is a control-plane node now
    assert (lcm.root("mt-w0") / "etc/ccloud/mke").read_text().split()[0] == "manager"

    await maintenance(lcm, Cluster, "mt", False)

    async def in_service() -> bool:
        c = await lcm.cluster("mt")
        return await lcm.ready("mt") and cond.get(c.status, "Maintenance") is None \
            and c.status.phase == "Ready"

    await eventually(in_service, timeout=20, what="cluster Ready, out of maintenance")


async def test_an_upgrade_waits_for_maintenance_and_passes_by_a_machine_in_it(
    lcm: Lcm,
) -> None:
    names = await lcm.create_cluster("mu", release="mke-3-7-0", cps=1, workers=2)
    await deployed(lcm, "mu", names, "mke-3-7-0")
    await maintenance(lcm, Cluster, "mu", True)
    await maintenance(lcm, Machine, "mu-w0", True)
    await eventually(condition_of(lcm, Machine, "mu-w0", "Maintenance",
                                  lambda c: c.reason == "Drained"),
                     timeout=20, what="mu-w0 drained")

    # An upgrade asked for in maintenance is held: allowed, but not started.
    await set_release(lcm, "mu", "mke-3-7-1")
    c = await eventually(condition_of(lcm, Cluster, "mu", "Upgraded",
                                      lambda c: c.reason == "HeldByMaintenance"),
                         what="the upgrade held")
    assert c.message == "the upgrade to mke-3-7-1 waits for the cluster to leave maintenance"
    c = await lcm.cluster("mu")
    assert "the upgrade to mke-3-7-1 waits for maintenance to end" in \
        cond.get(c.status, "Maintenance").message
    assert cond.is_true(c.status, "UpgradeAllowed")
    assert c.status.phase == "Maintenance" and c.status.release == "mke-3-7-0"
    assert (await lcm.store.get(LCMCluster, "mu", NS)).spec.release == "mke-3-7-0"
    for lm in await lcm.store.list_all(LCMMachine, NS):
        assert lm.spec.release == "mke-3-7-0", lm.metadata.name
        assert lm.spec.cordoned == (lm.metadata.name == "mu-w0"), lm.metadata.name

    # The cluster leaves maintenance with mu-w0 still in it. The gateway refuses that
    # order (409), but a write may bypass it: LCM still leaves mu-w0 alone - the rollout
    # upgrades the others, never uncordons mu-w0, and does not count it as stuck.
    await maintenance(lcm, Cluster, "mu", False)

    async def passed_by() -> Cluster | None:
        c = await lcm.cluster("mu")
        up = cond.get(c.status, "Upgraded")
        return c if up is not None and up.reason == "HeldByMaintenance" \
            and "mu-w0 in maintenance" in up.message else None

    c = await eventually(passed_by, timeout=45, what="the others upgraded, mu-w0 held")
    assert cond.get(c.status, "Upgraded").message == \
        "2 of 3 machines run mke-3-7-1; mu-w0 in maintenance, upgraded once out of it"
    assert c.status.phase == "Maintenance" and c.status.release == "mke-3-7-0"
    held = cond.get(c.status, "Maintenance")
    assert (held.status, held.reason) == ("False", "MachinesInMaintenance")
    for n in ("mu-cp0", "mu-w1"):
        assert (await lcm.lcm_machine(n)).status.release == "mke-3-7-1"
    w0 = await lcm.lcm_machine("mu-w0")
    assert (w0.spec.release, w0.status.release) == ("mke-3-7-0", "mke-3-7-0")
    assert w0.spec.cordoned and w0.status.cordoned
    assert node_log(lcm.root("mu-w0")).count("cordon") == 1
    assert "uncordon" not in node_log(lcm.root("mu-w0"))

    # Out of maintenance, mu-w0 - already drained - takes the new release, then is
    # uncordoned.
    left = time.time()
    await maintenance(lcm, Machine, "mu-w0", False)
    await eventually(lambda: upgraded(lcm, "mu", "mke-3-7-1"), timeout=30, what="upgraded")
    lines = [ln.split(" ", 1) for ln in
             (lcm.root("mu-w0") / "var/log/ccloud/applied.log").read_text().splitlines()]
    log = [what for _, what in lines]
    join = next(i for i, what in enumerate(log) if what.startswith("start mke-join 3.7.1"))
    assert float(lines[join][0]) >= left, "the new release reached mu-w0 in maintenance"
    assert log.count("cordon") == 1 and log[-1] == "uncordon", log
    assert log.index("cordon") < join < log.index("uncordon")
    c = await lcm.cluster("mu")
    assert cond.get(c.status, "Maintenance") is None and c.status.phase == "Ready"
    m = await lcm.store.get(Machine, "mu-w0", NS)
    assert cond.get(m.status, "Maintenance") is None and cond.is_true(m.status, "Ready")
