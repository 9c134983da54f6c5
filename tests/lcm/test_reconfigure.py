"""A Machine spec change reaches its node: the LCMMachine takes the new items, goes
Reconfigure, and the agent re-applies exactly the changed items."""

from __future__ import annotations

from services.release.defaults import cluster_release
from shared.models import LCMMachine, Machine
from tests.lcm.conftest import Lcm
from tests.lcm.test_agent import item_state, starts
from tests.waiting import eventually


async def test_role_change_reconfigures_the_node(lcm: Lcm) -> None:
    cp, w = await lcm.create_cluster("rc", release="mke-3-7-1", cps=1, workers=1)
    await eventually(lambda: lcm.find(LCMMachine, w), what="LCMMachines")
    await lcm.start_agent(cp)
    await lcm.start_agent(w)
    await eventually(lambda: lcm.ready("rc"), timeout=30, what="cluster Ready")
    root = lcm.root(w)
    assert (root / "etc/ccloud/mke").read_text().split() == ["worker", "3.7.1"]
    before = await lcm.lcm_machine(w)
    assert "addons" not in {i.name for i in before.spec.state_items}

    # Hold the re-join so the Reconfigure phase can be seen, then promote the worker.
    hold = root / "etc/ccloud/hold/mke-join"
    hold.parent.mkdir(parents=True, exist_ok=True)
    hold.write_text("")
    await lcm.set_spec(Machine, w, role="control-plane")

    async def reconfiguring() -> LCMMachine | None:
        lm = await lcm.lcm_machine(w)
        running = await item_state(lcm, w, "mke-join") == "Running"
        return lm if running and lm.status.phase == "Reconfigure" else None

    lm = await eventually(reconfiguring, timeout=20, what="Reconfigure, re-join running")
    assert lm.spec.role == "control-plane" and lm.spec.release == "mke-3-7-1"
    join = next(i for i in lm.spec.state_items if i.name == "mke-join")
    assert join.params["role"] == "manager"

    async def counted_not_ready() -> bool:
        return (await lcm.cluster("rc")).status.ready_machines == 1

    await eventually(counted_not_ready, timeout=20, what="the cluster counting it not ready")

    hold.unlink()
    await eventually(lambda: lcm.ready("rc"), timeout=30, what="Ready after reconfigure")
    lm = await lcm.lcm_machine(w)
    assert lm.status.phase == "Ready"
    assert (root / "etc/ccloud/mke").read_text().split() == ["manager", "3.7.1"]
    charts = {a.name for a in cluster_release("mke-3-7-1").spec.artifacts if a.type == "helm"}
    assert charts and {p.name for p in (root / "var/lib/ccloud/charts").iterdir()} == charts
    # Only what changed ran again: the join (new role) and the addons (new for managers).
    ran = starts(root)
    assert ran.count("host-prepare") == ran.count("container-runtime") == 1
    assert ran.count("mke-images") == 1
    assert ran.count("mke-join") == 2 and ran.count("addons") == 1
