"""Bootstrap end to end against a stand-in management set on its own nats-server.

The management set (``tests/bootstrap/management.py``, fixture ``mgmt``) is real parts: a
second nats-server, the KV store, the bus, the bridge (publisher + owner GC) and a health
server whose /readyz reflects its NATS connection.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.bootstrap import pivot, state
from services.bootstrap.flow import Bootstrap
from services.bootstrap.state import BootstrapError, Target
from shared.models import Cluster, Machine, Region, Resource
from shared.store import NotFound
from tests.bootstrap.management import Management

REPO = Path(__file__).resolve().parents[2]


def _by_uid(objs: list[Resource]) -> dict[str, Resource]:
    return {o.metadata.uid or "": o for o in objs}


async def _snapshot_bootstrap(data: Path) -> list[Resource]:
    """Objects of a (stopped) bootstrap set, read by starting its server on its data."""
    from services.bootstrap.bootset import BootstrapSet

    b = BootstrapSet(data)
    await b.start()
    try:
        assert b.store is not None
        return await pivot.everything(b.store)
    finally:
        await b.stop()


async def test_full_bootstrap_preserves_identity_and_cleans_up(
    tmp_path: Path, prefix: str, mgmt: Management
) -> None:
    data = tmp_path / "boot"
    # Stop just before cleanup to capture what the bootstrap set held, then finish.
    with pytest.raises(pivot.InjectedFailure):
        await Bootstrap(data, fail_after=0).create(mgmt.target(prefix, machines=3))
    before = _by_uid(await _snapshot_bootstrap(data))
    assert {o.kind for o in before.values()} == {"Region", "Cluster", "Machine"}
    assert len(before) == 5

    outcome = await Bootstrap(data).resume()
    assert outcome.phase == "cleaned" and outcome.moved == 5
    assert not data.exists(), "bootstrap data must be gone"

    after = _by_uid(await mgmt.objects())
    assert set(after) == set(before)
    for uid, want in before.items():
        got = after[uid]
        assert got.metadata.owner_references == want.metadata.owner_references
        assert got.metadata.creation_timestamp == want.metadata.creation_timestamp
        assert got.metadata.generation == want.metadata.generation
        assert got.status == want.status  # type: ignore[attr-defined]
        assert pivot.PAUSED_ANNOTATION not in got.metadata.annotations
    cluster = next(o for o in after.values() if isinstance(o, Cluster))
    assert cluster.status.phase == "Ready" and not cluster.spec.paused
    machines = [o for o in after.values() if isinstance(o, Machine)]
    assert all(m.status.provider_id.startswith("simulated:///") for m in machines)
    assert all(m.metadata.owner_references[0].uid == cluster.metadata.uid for m in machines)
    # Management's own GC saw owners first: nothing was collected as an orphan.
    assert len(await mgmt.sys.store.list_all(Machine)) == 3


async def test_interrupted_pivot_resumes_without_duplicates(
    tmp_path: Path, prefix: str, mgmt: Management
) -> None:
    data = tmp_path / "boot"
    with pytest.raises(pivot.InjectedFailure):
        await Bootstrap(data, fail_after=3).create(mgmt.target(prefix, machines=3))
    st = state.load(data)
    assert st is not None and st.phase == "pivoting" and len(st.moved) == 3
    assert "injected" in st.error
    half = await mgmt.objects()
    assert len(half) == 3
    # What landed before the interruption is paused: management leaves it alone.
    assert all(o.metadata.annotations.get(pivot.PAUSED_ANNOTATION) for o in half)

    outcome = await Bootstrap(data).resume()
    assert outcome.moved == 5 and not data.exists()
    final = await mgmt.objects()
    assert len(final) == 5
    names = [(o.kind, o.metadata.name) for o in final]
    assert len(names) == len(set(names))
    assert {o.metadata.uid for o in half} <= {o.metadata.uid for o in final}
    assert not any(pivot.PAUSED_ANNOTATION in o.metadata.annotations for o in final)


async def test_rollback_removes_moved_objects_and_bootstrap_data(
    tmp_path: Path, prefix: str, mgmt: Management
) -> None:
    # Something management already had must survive the rollback.
    from shared.models import ObjectMeta
    from shared.models.kinds import ClusterSpec

    keep = await mgmt.sys.store.create(Cluster(
        metadata=ObjectMeta(name="keep", namespace="default"),
        spec=ClusterSpec(region="r9", provider="simulated", release="mke-3-7-0")))
    data = tmp_path / "boot"
    with pytest.raises(pivot.InjectedFailure):
        await Bootstrap(data, fail_after=2).create(mgmt.target(prefix, machines=2))
    assert len(await mgmt.objects()) == 1 + 2

    outcome = await Bootstrap(data).rollback()
    assert outcome.moved == 2
    assert not data.exists()
    left = await mgmt.objects()
    assert [o.metadata.uid for o in left] == [keep.metadata.uid]
    with pytest.raises(NotFound):
        await mgmt.sys.store.get(Region, "region-one")
    with pytest.raises(BootstrapError, match="nothing to resume"):
        await Bootstrap(data).resume()


async def test_refuses_a_second_create_and_an_unreachable_management(
    tmp_path: Path, prefix: str, mgmt: Management
) -> None:
    data = tmp_path / "boot"
    target = Target(management_url="nats://127.0.0.1:1", prefix=prefix, machines=1,
                    health_urls=[mgmt.readyz])
    with pytest.raises(BootstrapError, match="cannot reach the management set"):
        await Bootstrap(data).create(target)
    st = state.load(data)
    assert st is not None and st.phase == "cluster-created"
    with pytest.raises(BootstrapError, match="already recorded"):
        await Bootstrap(data).create(target)
    await Bootstrap(data).rollback()
    assert not data.exists()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.bootstrap", *args], cwd=REPO, capture_output=True,
        text=True, timeout=60, env={**os.environ, **(env or {})},
    )


async def test_cli_create_interrupted_then_resumed(
    tmp_path: Path, prefix: str, mgmt: Management
) -> None:
    import asyncio

    data_dir = tmp_path / "boot"
    data = str(data_dir)
    args = ["create", "--data", data, "--management-url", mgmt.server.url, "--prefix", prefix,
            "--health", mgmt.readyz, "--machines", "2"]
    failed = await asyncio.to_thread(_cli, *args, env={"CCLOUD_BOOTSTRAP_FAIL_AFTER": "2"})
    assert failed.returncode == 1
    assert "injected failure after moving 2 objects" in failed.stderr
    assert "Traceback" not in failed.stderr and "resume" in failed.stderr

    done = await asyncio.to_thread(_cli, "resume", "--data", data)
    assert done.returncode == 0, done.stderr
    assert "4 objects moved" in done.stdout
    assert not data_dir.exists()
    assert len(await mgmt.objects()) == 4


async def test_pivot_moves_provider_nodes_and_management_takes_over(
    tmp_path: Path, prefix: str, mgmt: Management
) -> None:
    """With management's provider and LCM running, the half-moved copies stay paused and
    untouched; after the pivot the provider adopts the moved nodes instead of making new."""
    from services.bootstrap.bootset import BootstrapSet
    from services.providers.machines import finalizer_for
    from tests.bootstrap.controllers import running
    from tests.waiting import eventually

    data = tmp_path / "boot"
    async with running(mgmt.sys, "region-one") as ctl:
        with pytest.raises(pivot.InjectedFailure):
            await Bootstrap(data, fail_after=3).create(mgmt.target(prefix, machines=3))
        boot = BootstrapSet(data)
        await boot.start()
        try:
            assert boot.nodes is not None
            made = {n.machine_uid: n for n in await boot.nodes.all()}
        finally:
            await boot.stop()
        assert len(made) == 3
        # The nodes moved before any object, whatever the interruption.
        assert {n.machine_uid: n for n in await ctl.nodes.all()} == made
        half = [o for o in await mgmt.objects() if isinstance(o, Machine)]
        assert half, "at least one Machine landed before the interruption"
        await eventually(lambda: ctl.machines.reconciled >= len(half), timeout=10,
                         what="the provider saw the paused machines")
        for m in half:
            got = await mgmt.sys.store.get(Machine, m.metadata.name, m.metadata.namespace)
            assert got.metadata.finalizers == [] and got.status == m.status

        outcome = await Bootstrap(data).resume()
        assert outcome.phase == "cleaned"

        async def adopted() -> bool:
            machines = await mgmt.sys.store.list_all(Machine)
            return len(machines) == 3 and all(
                finalizer_for("simulated") in m.metadata.finalizers
                and m.status.phase == "Running" and m.status.provider_steps
                for m in machines)

        await eventually(adopted, timeout=15, what="management's provider took the machines")
        nodes = {n.machine_uid: n for n in await ctl.nodes.all()}
        # Same three records (created before the pivot), none made twice or anew.
        assert set(nodes) == set(made)
        assert all(nodes[u].created_at == made[u].created_at for u in made)
        for m in await mgmt.sys.store.list_all(Machine):
            assert m.status.provider_id == f"simulated:///{made[m.metadata.uid or ''].id}"


async def test_rollback_removes_moved_nodes_from_management(
    tmp_path: Path, prefix: str, mgmt: Management
) -> None:
    from services.providers.simulated.nodes import KVNodes, nodes_bucket

    nodes = KVNodes(mgmt.sys.nc, bucket=nodes_bucket(prefix))
    await nodes.start()
    data = tmp_path / "boot"
    with pytest.raises(pivot.InjectedFailure):
        await Bootstrap(data, fail_after=1).create(mgmt.target(prefix, machines=2))
    st = state.load(data)
    assert st is not None and len(st.nodes) == 2
    assert {n.machine_uid for n in await nodes.all()} == set(st.nodes)
    await Bootstrap(data).rollback()
    assert await nodes.all() == []
