"""A 3 control-plane + 5 worker cluster goes Ready with eight real agent processes."""

from __future__ import annotations

import msgspec

from services.lcm.items import item_hash
from services.lcm.tokens import join_token
from services.release.defaults import cluster_release
from shared.models import LCMCluster, LCMMachine, Machine
from shared.runtime import conditions as cond
from tests.lcm.conftest import NS, SECRET, Lcm
from tests.waiting import eventually


async def test_three_plus_five_cluster_goes_ready(lcm: Lcm) -> None:
    names = await lcm.create_cluster("alpha", release="mke-3-7-1", cps=3, workers=5)
    lm = await eventually(lambda: lcm.find(LCMMachine, names[-1]), what="LCMMachine created")
    assert lm.status.phase in ("", "Uninitialized")
    for n in names:
        await lcm.start_agent(n)

    await eventually(lambda: lcm.ready("alpha"), timeout=45, what="cluster Ready")

    cluster = await lcm.cluster("alpha")
    assert (cluster.status.ready_machines, cluster.status.total_machines) == (8, 8)
    assert cluster.status.release == "mke-3-7-1"
    assert cluster.status.phase == "Ready"
    lcc = await lcm.store.get(LCMCluster, "alpha", NS)
    assert (lcc.status.ready_nodes, lcc.status.total_nodes, lcc.status.release) == (
        8, 8, "mke-3-7-1")
    # Every node joined through the first control-plane node with the cluster's token,
    # which only the nodes hold: the stored objects name it by reference.
    assert (lcc.status.manager_machine, lcc.status.manager_address) == ("alpha-cp0", "10.250.0.1")
    assert lcc.metadata.uid
    token = join_token(SECRET, lcc.metadata.uid)

    release = cluster_release("mke-3-7-1")
    debs = {a.name: a.version for a in release.spec.artifacts if a.type == "deb"}
    charts = {a.name for a in release.spec.artifacts if a.type == "helm"}
    for n in names:
        lm = await lcm.lcm_machine(n)
        assert lm.status.phase == "Ready", n
        assert lm.status.hostname == f"node-{n}"
        assert lm.status.release == "mke-3-7-1"
        for item in lm.spec.state_items:
            st = lm.status.state_items[item.name]
            assert (st.state, st.hash) == ("Done", item_hash(item))
        m = await lcm.store.get(Machine, n, NS)
        assert m.status.lcm_phase == "Ready" and m.status.node_name == f"node-{n}"
        assert cond.is_true(m.status, "LCMReady")
        # What the agent actually did on its node.
        root = lcm.root(n)
        for pkg, version in debs.items():
            assert (root / f"var/lib/ccloud/packages/{pkg}").read_text().strip() == version
        role = "manager" if "-cp" in n else "worker"
        assert (root / "etc/ccloud/mke").read_text().split() == [role, "3.7.1"]
        # The manager installed MKE; every other node joined through its address.
        joined = "" if n == "alpha-cp0" else "10.250.0.1"
        assert (root / "etc/ccloud/mke-manager").read_text().strip() == joined
        held = root / "etc/ccloud/mke-join-token"
        assert held.read_text() == token and held.stat().st_mode & 0o777 == 0o600
        assert token.encode() not in msgspec.json.encode(lm)
        installed = {p.name for p in (root / "var/lib/ccloud/charts").glob("*")} if (
            root / "var/lib/ccloud/charts").exists() else set()
        assert installed == (charts if role == "manager" else set())
        assert "mirror.local.test" in (root / "etc/apt/sources.list.d/ccloud.list").read_text()
        # Each item ran exactly once, in order: prepare before deploy.
        log = (root / "var/log/ccloud/applied.log").read_text().split("\n")
        started = [line.split()[2] for line in log if line.split()[1:2] == ["start"]]
        assert started == [i.name for i in lm.spec.state_items]
