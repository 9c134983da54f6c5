"""Owner garbage collection: background cascade deletion across every kind.

Runs against the real system of record (KV store, bus, bridge) from ``tests.harness``.
"""

from __future__ import annotations

import msgspec
import pytest

from services.bridge.gc import GarbageCollector
from shared.models import (
    Cluster,
    ClusterSpec,
    Machine,
    MachineSpec,
    ObjectMeta,
    OwnerReference,
    PublicKey,
    PublicKeySpec,
    Region,
    Resource,
)
from shared.store import NotFound, Store
from tests.harness import system
from tests.waiting import eventually

NS = "ns"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGc test"


def cluster(name: str, *, owners: list[OwnerReference] | None = None,
            finalizers: list[str] | None = None) -> Cluster:
    return Cluster(
        metadata=ObjectMeta(name=name, namespace=NS, owner_references=owners or [],
                            finalizers=finalizers or []),
        spec=ClusterSpec(region="r1", provider="simulated", release="x"),
    )


def machine(name: str, *owners: Resource) -> Machine:
    return Machine(
        metadata=ObjectMeta(name=name, namespace=NS,
                            owner_references=[o.owner_ref(controller=False) for o in owners]),
        spec=MachineSpec(cluster="c1", region="r1"),
    )


def public_key(name: str, *, owners: list[OwnerReference]) -> PublicKey:
    return PublicKey(metadata=ObjectMeta(name=name, namespace=NS, owner_references=owners),
                     spec=PublicKeySpec(public_key=KEY))


async def exists(store: Store, obj: Resource) -> bool:
    """Whether the very object (same uid) is still stored."""
    try:
        got = await store.get(type(obj), obj.metadata.name, obj.metadata.namespace)
    except NotFound:
        return False
    return got.metadata.uid == obj.metadata.uid


async def test_owner_deletion_cascades_to_every_kind_and_nothing_else(nc, prefix):
    async with system(nc, prefix) as h:
        c1 = await h.store.create(cluster("c1"))
        other = await h.store.create(cluster("c2"))
        # No kind declares that Clusters own PublicKeys: the reference alone counts.
        key = await h.store.create(public_key("k1", owners=[c1.owner_ref()]))
        owned = [await h.store.create(machine(f"m{i}", c1)) for i in range(2)]
        # Keep: no owner; another (live) owner; an owner of a kind the GC cannot resolve.
        unowned = await h.store.create(machine("unowned"))
        kept = await h.store.create(machine("kept", other))
        foreign = await h.store.create(public_key("foreign", owners=[OwnerReference(
            api_version="example.com/v1", kind="Widget", name="w", uid="uid-widget")]))
        await h.store.delete(Cluster, "c1", NS)

        async def collected() -> bool:
            return not any([await exists(h.store, o) for o in (key, *owned)])

        await eventually(collected, what="c1's PublicKey and Machines collected")
        for obj in (other, unowned, kept, foreign):
            assert await exists(h.store, obj), obj.metadata.name
        assert h.gc.collected == 3


async def test_chain_across_scopes_is_collected_level_by_level(nc, prefix):
    """A cluster-scoped owner of a namespaced object; its removal orphans the next level."""
    async with system(nc, prefix) as h:
        region = await h.store.create(Region(metadata=ObjectMeta(name="r1")))
        c = await h.store.create(cluster("c1", owners=[region.owner_ref()]))
        m = await h.store.create(machine("m1", c))
        await h.store.delete(Region, "r1")

        async def gone() -> bool:
            return not await exists(h.store, c) and not await exists(h.store, m)

        await eventually(gone, what="the cluster, then its machine, collected")


async def test_dependent_with_two_owners_stays_until_both_are_gone(nc, prefix):
    async with system(nc, prefix) as h:
        a = await h.store.create(cluster("a"))
        b = await h.store.create(cluster("b"))
        shared = await h.store.create(machine("shared", a, b))
        only_a = await h.store.create(machine("only-a", a))
        await h.store.delete(Cluster, "a", NS)
        await eventually(lambda: _gone(h, only_a), what="only-a collected")
        # A full sweep after a's removal still keeps the object b owns too.
        assert await h.gc.sweep() == 0
        assert await exists(h.store, shared)
        await h.store.delete(Cluster, "b", NS)
        await eventually(lambda: _gone(h, shared), what="shared collected once b is gone")


async def _gone(h, obj: Resource) -> bool:
    return not await exists(h.store, obj)


async def test_owner_with_pending_finalizers_keeps_its_dependents(nc, prefix):
    """Background deletion: dependents go once the owner is removed, not when marked."""
    async with system(nc, prefix) as h:
        c = await h.store.create(cluster("c1", finalizers=["example.com/hold"]))
        m = await h.store.create(machine("m1", c))
        marked = await h.store.delete(Cluster, "c1", NS)
        assert marked is not None and marked.deleting
        assert await h.gc.sweep() == 0
        assert await exists(h.store, m)
        await h.store.update(msgspec.structs.replace(
            marked, metadata=msgspec.structs.replace(marked.metadata, finalizers=[])))
        await eventually(lambda: _gone(h, m), what="m1 collected once c1 is removed")


async def test_orphan_left_while_the_bridge_was_down_is_collected_at_start(nc, prefix):
    async with system(nc, prefix) as h:
        c = await h.store.create(cluster("c1"))
        m = await h.store.create(machine("m1", c))
        await h.gc.stop()
        await h.store.delete(Cluster, "c1", NS)
        # The delete event is never seen: the collector's durable consumer is gone too
        # (as when its events expired), and the new one starts at new events.
        await h.bus.js.delete_consumer(h.bus.stream, "bridge-gc")
        assert await exists(h.store, m)
        gc = GarbageCollector(h.store, h.bus, sweep_interval=3600)
        await gc.start()
        try:
            await eventually(lambda: _gone(h, m), what="the start sweep to collect m1")
            assert gc.collected == 1
        finally:
            await gc.stop()


async def test_periodic_sweep_collects_an_orphan_no_event_announced(nc, prefix):
    async with system(nc, prefix) as h:
        await h.gc.stop()
        gc = GarbageCollector(h.store, h.bus, sweep_interval=0.2)
        await gc.start()
        try:
            await eventually(lambda: gc.sweeps >= 1, what="the start sweep")
            # Created already orphaned (its owner never existed here): only a create event.
            ghost = OwnerReference(api_version="kaas.containercloud.dev/v1alpha1",
                                   kind="Cluster", name="ghost", uid="uid-ghost")
            k = await h.store.create(public_key("k1", owners=[ghost]))
            await eventually(lambda: _gone(h, k), what="a periodic sweep to collect k1")
        finally:
            await gc.stop()


async def test_an_owner_created_after_the_sweep_listed_it_is_checked_directly(nc, prefix):
    """The pass's uid set may predate an owner; the direct read before deleting does not."""
    async with system(nc, prefix) as h:
        await h.gc.stop()
        c = await h.store.create(cluster("c1"))
        m = await h.store.create(machine("m1", c))
        gc = GarbageCollector(h.store, h.bus, kinds=[Machine])  # never lists Clusters
        assert await gc.sweep() == 0
        assert await exists(h.store, m)


def test_sweep_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="sweep_interval"):
        GarbageCollector(None, None, sweep_interval=0)  # type: ignore[arg-type]


def test_sweep_interval_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.bridge.__main__ import sweep_interval

    monkeypatch.delenv("CCLOUD_GC_SWEEP_SECONDS", raising=False)
    assert sweep_interval() == 300.0
    monkeypatch.setenv("CCLOUD_GC_SWEEP_SECONDS", "42.5")
    assert sweep_interval() == 42.5
    for bad, why in (("soon", "not a number"), ("0", "must be positive"), ("nan", "positive")):
        monkeypatch.setenv("CCLOUD_GC_SWEEP_SECONDS", bad)
        with pytest.raises(SystemExit, match=why):
            sweep_interval()
