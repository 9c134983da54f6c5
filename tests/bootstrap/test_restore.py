"""``KVStore.restore``: objects move between stores with uid, owners and status intact."""

from __future__ import annotations

import msgspec
import pytest

from shared.models import Cluster, Machine, ObjectMeta
from shared.models.kinds import ClusterSpec, ClusterStatus, MachineSpec
from shared.store import AlreadyExists, Conflict, Invalid
from shared.store.kv import KVStore


async def _stores(nc, prefix: str) -> tuple[KVStore, KVStore]:
    a, b = KVStore(nc, bucket=f"{prefix}-a"), KVStore(nc, bucket=f"{prefix}-b")
    await a.start()
    await b.start()
    return a, b


async def test_restore_keeps_identity_owners_and_status(nc, prefix: str) -> None:
    src, dst = await _stores(nc, prefix)
    cluster = await src.create(Cluster(
        metadata=ObjectMeta(name="c1", namespace="default"),
        spec=ClusterSpec(region="r1", provider="simulated", release="mke-3-7-0"),
    ))
    cluster = await src.update_status(msgspec.structs.replace(
        cluster, status=ClusterStatus(phase="Ready", ready_machines=1)))
    machine = await src.create(Machine(
        metadata=ObjectMeta(name="m1", namespace="default", finalizers=["x/y"],
                            owner_references=[cluster.owner_ref()]),
        spec=MachineSpec(cluster="c1", region="r1"),
    ))

    moved = await dst.restore(cluster)
    moved_m = await dst.restore(machine)
    got = await dst.get(Cluster, "c1", "default")
    got_m = await dst.get(Machine, "m1", "default")
    assert got.metadata.uid == cluster.metadata.uid == moved.metadata.uid
    assert got.metadata.creation_timestamp == cluster.metadata.creation_timestamp
    assert got.status.phase == "Ready" and got.status.ready_machines == 1
    assert got_m.metadata.owner_references == machine.metadata.owner_references
    assert got_m.metadata.finalizers == ["x/y"]
    assert got_m.metadata.resource_version == moved_m.metadata.resource_version

    # Idempotent: restoring the same uid again overwrites, never duplicates.
    again = await dst.restore(cluster)
    assert again.metadata.uid == cluster.metadata.uid
    assert len(await dst.list_all(Cluster, "default")) == 1


async def test_restore_refuses_other_uid_stale_version_and_missing_uid(nc, prefix: str) -> None:
    src, dst = await _stores(nc, prefix)
    spec = ClusterSpec(region="r1", provider="simulated", release="mke-3-7-0")
    original = await src.create(Cluster(metadata=ObjectMeta(name="c1", namespace="d"), spec=spec))
    other = await dst.create(Cluster(metadata=ObjectMeta(name="c1", namespace="d"), spec=spec))
    assert other.metadata.uid != original.metadata.uid
    with pytest.raises(AlreadyExists):
        await dst.restore(original)
    with pytest.raises(Conflict):
        await dst.restore(other, resource_version="999999")
    with pytest.raises(Invalid):
        await dst.restore(Cluster(metadata=ObjectMeta(name="c2", namespace="d"), spec=spec))
    # A deleted key can be restored (tombstone handled).
    await dst.delete(Cluster, "c1", "d")
    back = await dst.restore(original)
    assert back.metadata.uid == original.metadata.uid
