"""``ccctl scale``: kubectl's syntax, through the scale subresource."""

from __future__ import annotations

import pytest

from shared.models import MachinePool, convert
from tests.api.test_scale import pool
from tests.cli.conftest import Ctl

SCALED = "machinepool.kaas.containercloud.dev/workers scaled"


async def _replicas(ctl: Ctl, ns: str = "team-a") -> int:
    obj = await ctl.gw.store.get(MachinePool, "workers", ns)
    assert isinstance(obj, MachinePool)
    return obj.spec.replicas


async def test_scale_sets_replicas_through_the_subresource(ctl: Ctl) -> None:
    await ctl.gw.store.create(convert(MachinePool, pool(replicas=3)))
    r = await ctl("scale", "machinepool/workers", "--replicas=5")
    assert (r.code, r.out.strip()) == (0, SCALED), r.err
    assert await _replicas(ctl) == 5
    r = await ctl("scale", "mp", "workers", "--replicas", "2", "-n", "team-a")
    assert (r.code, r.out.strip()) == (0, SCALED), r.err
    assert await _replicas(ctl) == 2
    r = await ctl("scale", "machinepools", "workers", "--replicas", "0", user="wally")
    assert (r.code, r.out.strip()) == (0, SCALED), r.err
    assert await _replicas(ctl) == 0
    audited = [(e["verb"], e["subresource"]) for e in ctl.gw.audit_lines()
               if e["kind"] == "MachinePool"]
    assert audited == [("patch", "scale")] * 3, "the /scale subresource, no other write"


async def test_current_replicas_and_resource_version_are_preconditions(ctl: Ctl) -> None:
    await ctl.gw.store.create(convert(MachinePool, pool(replicas=3)))
    r = await ctl("scale", "mp/workers", "--current-replicas=2", "--replicas=4")
    assert r.code == 1 and r.out == "", r.out
    assert "expected replicas to be 2, was 3" in r.err and "not scaled" in r.err, r.err
    assert await _replicas(ctl) == 3
    r = await ctl("scale", "mp/workers", "--current-replicas=3", "--replicas=4")
    assert (r.code, r.out.strip()) == (0, SCALED), r.err
    assert await _replicas(ctl) == 4
    # Down to zero with a precondition (a written-back Scale, replicas 0 explicit).
    r = await ctl("scale", "mp/workers", "--current-replicas=4", "--replicas=0")
    assert (r.code, r.out.strip()) == (0, SCALED), r.err
    assert await _replicas(ctl) == 0

    stored = await ctl.gw.store.get(MachinePool, "workers", "team-a")
    rv = stored.metadata.resource_version
    assert rv
    r = await ctl("scale", "mp/workers", "--resource-version=1", "--replicas=1")
    assert r.code == 1 and "expected resource version to be 1" in r.err, r.err
    r = await ctl("scale", "mp/workers", f"--resource-version={rv}", "--replicas=1")
    assert (r.code, r.out.strip()) == (0, SCALED), r.err
    assert await _replicas(ctl) == 1


async def test_server_dry_run_scales_nothing(ctl: Ctl) -> None:
    await ctl.gw.store.create(convert(MachinePool, pool(replicas=3)))
    for extra in ((), ("--current-replicas=3",)):
        r = await ctl("scale", "mp/workers", "--replicas=7", "--dry-run=server", *extra)
        assert (r.code, r.out.strip()) == (0, SCALED + " (server dry run)"), r.err
    r = await ctl("scale", "mp/workers", "--replicas=1001", "--dry-run=server")
    assert r.code == 1 and "spec.replicas" in r.err, "the server's checks still answer"
    assert await _replicas(ctl) == 3


async def test_clear_errors_never_a_traceback(
    ctl: Ctl, capsys: pytest.CaptureFixture[str]
) -> None:
    await ctl.gw.store.create(convert(MachinePool, pool(replicas=3)))
    r = await ctl("apply", "-f", "-", stdin="""\
kind: Cluster
metadata: {name: demo}
spec: {region: local, provider: simulated, release: mke-1-0}
""")
    assert r.code == 0, r.err
    cases = [
        (["scale", "cluster", "demo", "--replicas=2"],
         "clusters.kaas.containercloud.dev cannot be scaled"),
        (["scale", "cl/demo", "--replicas=2"], "kinds that scale: machinepools"),
        (["scale", "mp/workers", "--replicas=-1"], "must be greater than or equal to 0"),
        (["scale", "mp/workers", "--replicas=1001"], "spec.replicas"),
        (["scale", "mp/absent", "--replicas=1"], "Error from server (NotFound)"),
        (["scale", "mp/workers", "--replicas=1", "-n", "team-b"], "NotFound"),
        (["scale", "mp", "--replicas=1"], "scale takes KIND NAME"),
        (["scale", "gizmos/x", "--replicas=1"], "gizmos"),
    ]
    for args, said in cases:
        r = await ctl(*args)
        assert r.code != 0 and said in r.err, (args, r.err)
        assert "Traceback" not in r.err
    capsys.readouterr()
    for args, said in ((["scale", "mp/workers"], "required: --replicas"),
                       (["scale", "mp/workers", "--replicas=three"], "invalid int value")):
        r = await ctl(*args)  # argparse's own usage errors, on the process's stderr
        err = capsys.readouterr().err
        assert r.code == 2 and said in err and "Traceback" not in err, (args, err)
    r = await ctl("scale", "mp/workers", "--replicas=1", user="rita")  # a reader
    assert r.code == 1 and "Forbidden" in r.err and 'User "rita"' in r.err, r.err
    assert await _replicas(ctl) == 3
