"""Rolling upgrades with real agents: order (control plane one by one, then update groups
by index within their caps), cordon/drain around each node, the compatibility check, and
a failure that stops the rollout until it is fixed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.release.defaults import cluster_release
from shared.models import Cluster, LCMCluster, LCMMachine
from shared.runtime import conditions as cond
from tests.lcm.conftest import NS, Lcm
from tests.waiting import eventually


async def set_release(lcm: Lcm, cluster: str, release: str) -> None:
    await lcm.set_spec(Cluster, cluster, release=release)


async def deployed(lcm: Lcm, cluster: str, names: list[str], release: str) -> None:
    await eventually(lambda: lcm.find(LCMMachine, names[-1]), what="LCMMachines")
    await asyncio.gather(*(lcm.start_agent(n) for n in names))

    async def ready() -> bool:
        c = await lcm.cluster(cluster)
        return await lcm.ready(cluster) and c.status.release == release

    await eventually(ready, timeout=40, what=f"{cluster} Ready at {release}")


async def upgraded(lcm: Lcm, cluster: str, release: str) -> bool:
    c = await lcm.cluster(cluster)
    return (cond.is_true(c.status, "Upgraded") and c.status.release == release
            and await lcm.ready(cluster))


def windows(lcm: Lcm, names: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """When each node was cordoned and uncordoned, from the nodes' own logs: the agents
    write these lines at the moment they act, so no polling skew enters the order."""
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    for n in names:
        for line in (lcm.root(n) / "var/log/ccloud/applied.log").read_text().splitlines():
            stamp, _, what = line.partition(" ")
            if what == "cordon":
                start[n] = float(stamp)
            elif what == "uncordon":
                end[n] = float(stamp)
    return start, end


def node_log(root: Path) -> list[str]:
    return [" ".join(ln.split()[1:]) for ln in
            (root / "var/log/ccloud/applied.log").read_text().splitlines()]


async def test_rolling_upgrade_order_and_compatibility(lcm: Lcm) -> None:
    names = await lcm.create_cluster(
        "up", release="mke-3-7-0", cps=2, workers=4,
        groups={"g1": (1, 2), "g2": (2, 1)},
        worker_groups={"up-w0": "g1", "up-w1": "g1", "up-w2": "g2", "up-w3": "g2"},
    )
    await deployed(lcm, "up", names, "mke-3-7-0")

    # 3.7.0 -> 3.8.0 skips a step: refused, nothing moves.
    await set_release(lcm, "up", "mke-3-8-0")

    async def refused() -> str:
        c = cond.get((await lcm.cluster("up")).status, "UpgradeAllowed")
        return c.message if c is not None and c.status == "False" else ""

    message = await eventually(refused, what="upgrade refused")
    assert "mke-3-7-0 -> mke-3-8-0 is not allowed" in message
    assert (await lcm.store.get(LCMCluster, "up", NS)).spec.release == "mke-3-7-0"
    assert not [lm for lm in await lcm.store.list_all(LCMMachine, NS) if lm.spec.cordoned]

    await set_release(lcm, "up", "mke-3-7-1")
    await eventually(lambda: upgraded(lcm, "up", "mke-3-7-1"), timeout=45, what="upgraded")
    s, e = windows(lcm, names)
    assert set(s) == set(e) == set(names)

    # Control plane one at a time, all before any worker.
    assert e["up-cp0"] <= s["up-cp1"]
    assert e["up-cp1"] <= min(s[n] for n in names[2:])
    # g1 (index 1, two at once) together, then g2 (index 2, one at a time).
    assert s["up-w1"] < e["up-w0"] and s["up-w0"] < e["up-w1"]
    assert max(e["up-w0"], e["up-w1"]) <= min(s["up-w2"], s["up-w3"])
    assert e["up-w2"] <= s["up-w3"]

    new = cluster_release("mke-3-7-1")
    runtime = {a.name: a.version for a in new.spec.artifacts if a.type == "deb"}
    for n in names:
        root = lcm.root(n)
        log = node_log(root)
        cordon, uncordon = log.index("cordon"), log.index("uncordon")
        upgrade_items = [i for i, ln in enumerate(log) if ln.startswith("start mke-join 3.7.1")]
        assert cordon < upgrade_items[0] < uncordon, (n, log)
        assert log.count("cordon") == 1 and log[-1] == "uncordon"
        assert (root / "var/lib/ccloud/packages/containerd.io").read_text().strip() == runtime[
            "containerd.io"]
        assert (root / "etc/ccloud/mke").read_text().split()[1] == "3.7.1"
        assert (root / "var/lib/ccloud/node-state").read_text().strip() == "schedulable"
    lcc = await lcm.store.get(LCMCluster, "up", NS)
    assert lcc.status.release == "mke-3-7-1" and not lcc.status.upgrade_in_progress


async def test_failure_stops_rollout_and_resumes_when_fixed(lcm: Lcm) -> None:
    names = await lcm.create_cluster("fx", release="mke-3-7-0", cps=1, workers=3)
    await deployed(lcm, "fx", names, "mke-3-7-0")
    fail = lcm.root("fx-w1") / "etc/ccloud/fail/container-runtime"
    fail.parent.mkdir(parents=True, exist_ok=True)
    fail.write_text("dpkg: error processing package containerd.io (--configure)")

    await set_release(lcm, "fx", "mke-3-7-1")

    async def stopped() -> str:
        c = cond.get((await lcm.cluster("fx")).status, "Upgraded")
        return c.message if c is not None and c.reason == "UpgradeFailed" else ""

    message = await eventually(stopped, timeout=30, what="rollout stopped")
    assert "fx-w1" in message and "dpkg: error processing package" in message

    async def retried() -> bool:
        st = (await lcm.lcm_machine("fx-w1")).status.state_items.get("container-runtime")
        return st is not None and st.state == "Failed" and st.attempts >= 2

    await eventually(retried, timeout=15, what="failing item retried")
    w1, w2 = await lcm.lcm_machine("fx-w1"), await lcm.lcm_machine("fx-w2")
    assert w1.status.phase == "Upgrade"
    assert "dpkg" in (cond.get(w1.status, "ItemsReady") or cond.get(w1.status, "Ready")).message
    assert (w2.spec.release, w2.spec.cordoned) == ("mke-3-7-0", False)  # never started
    c = await lcm.cluster("fx")
    assert c.status.phase == "Failed" and c.status.release == "mke-3-7-0"
    assert not cond.is_true(c.status, "Ready")

    fail.unlink()
    await eventually(lambda: upgraded(lcm, "fx", "mke-3-7-1"), timeout=30, what="resumed")
    for n in names:
        assert (await lcm.lcm_machine(n)).status.release == "mke-3-7-1"
