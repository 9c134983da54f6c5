"""A node that cannot be drained (or uncordoned) is reported and stops the rollout, which
resumes once the node is fixed."""

from __future__ import annotations

from pathlib import Path

from shared.models import LCMMachine
from shared.runtime import conditions as cond
from tests.lcm.conftest import Lcm
from tests.lcm.test_upgrade import deployed, set_release, upgraded
from tests.waiting import eventually

PDB = "error: cannot evict pod default/web-1: would violate the PodDisruptionBudget"


def fail_file(lcm: Lcm, machine: str, what: str, text: str) -> Path:
    f = lcm.root(machine) / "etc/ccloud/fail" / what
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)
    return f


async def stopped_at(lcm: Lcm, cluster: str) -> str:
    c = await lcm.cluster(cluster)
    up = cond.get(c.status, "Upgraded")
    if c.status.phase == "Failed" and up is not None and up.reason == "UpgradeFailed":
        return up.message
    return ""


async def test_cordon_and_uncordon_failures_stop_the_rollout_until_fixed(lcm: Lcm) -> None:
    names = await lcm.create_cluster("cf", release="mke-3-7-0", cps=1, workers=2)
    await deployed(lcm, "cf", names, "mke-3-7-0")
    drain = fail_file(lcm, "cf-w0", "cordon", PDB)
    uncordon = fail_file(lcm, "cf-w1", "uncordon", "kubectl: connection refused")

    await set_release(lcm, "cf", "mke-3-7-1")
    message = await eventually(lambda: stopped_at(lcm, "cf"), timeout=30, what="drain failure")
    assert message == f"upgrade to mke-3-7-1 stopped at cf-w0: cordon and drain failed: {PDB}"
    w0, w1 = await lcm.lcm_machine("cf-w0"), await lcm.lcm_machine("cf-w1")
    assert w0.status.cordon_error == f"cordon and drain failed: {PDB}"
    c = cond.get(w0.status, "Cordon")
    assert c is not None and (c.status, c.reason) == ("False", "DrainFailed")
    assert not cond.is_true(w0.status, "Ready")
    # Not drained, so nothing new was applied, and the next worker never started.
    assert (w0.spec.release, w0.status.cordoned) == ("mke-3-7-0", False)
    assert (w1.spec.release, w1.spec.cordoned) == ("mke-3-7-0", False)
    ready = cond.get((await lcm.cluster("cf")).status, "MachinesReady")
    assert ready is not None and ready.reason == "MachineFailed" and PDB in ready.message

    drain.unlink()  # the PDB allows the eviction now: w0 goes on, then w1 until uncordon

    async def uncordon_failed() -> str:
        msg = await stopped_at(lcm, "cf")
        return msg if "cf-w1" in msg else ""

    message = await eventually(uncordon_failed, timeout=30, what="uncordon failure")
    assert message.endswith("cf-w1: uncordon failed: kubectl: connection refused")
    w0, w1 = await lcm.lcm_machine("cf-w0"), await lcm.lcm_machine("cf-w1")
    assert w0.status.release == "mke-3-7-1" and not w0.status.cordon_error
    assert cond.get(w0.status, "Cordon") is None
    c = cond.get(w1.status, "Cordon")
    assert c is not None and (c.status, c.reason) == ("False", "UncordonFailed")
    assert w1.status.release == "mke-3-7-1" and w1.status.cordoned

    uncordon.unlink()
    await eventually(lambda: upgraded(lcm, "cf", "mke-3-7-1"), timeout=30, what="resumed")
    for n in names:
        lm: LCMMachine = await lcm.lcm_machine(n)
        assert not lm.status.cordon_error and cond.get(lm.status, "Cordon") is None
        node = (lcm.root(n) / "var/lib/ccloud/node-state").read_text().strip()
        assert node == "schedulable", n
    assert (await lcm.cluster("cf")).status.phase == "Ready"
