"""Status writes with conflict retry (``shared.runtime.objects``) on a real KV store: another
writer bumps the resourceVersion between our read and our write, and neither write is lost."""

from __future__ import annotations

import pytest

from shared.models import Machine, MachineSpec, ObjectMeta
from shared.runtime import conditions, status_writer, update_status, write_status
from shared.store.kv import KVStore

NS = "team-a"


@pytest.fixture
def store(kv_store: KVStore) -> KVStore:
    return kv_store


async def stale_machine(store: KVStore) -> tuple[Machine, Machine]:
    """Our copy of a machine, and the store's after another writer changed its spec."""
    ours = await store.create(Machine(metadata=ObjectMeta(name="m", namespace=NS),
                                      spec=MachineSpec(cluster="c1", region="local")))
    theirs = await store.get(Machine, "m", NS)
    theirs.spec.update_group = "late"
    theirs = await store.update(theirs)
    assert int(theirs.metadata.resource_version) > int(ours.metadata.resource_version)
    return ours, theirs


async def test_update_status_reapplies_its_change_to_the_fresh_object(store: KVStore) -> None:
    ours, theirs = await stale_machine(store)
    seen: list[str | None] = []

    def ready(m: Machine) -> None:
        seen.append(m.metadata.resource_version)
        m.status.phase = "Ready"

    out = await update_status(store, ours, ready)
    # Applied to our stale copy, conflicted, applied again to the object as stored.
    assert seen == [ours.metadata.resource_version, theirs.metadata.resource_version]
    stored = await store.get(Machine, "m", NS)
    assert stored.metadata.resource_version == out.metadata.resource_version
    assert (stored.status.phase, stored.spec.update_group) == ("Ready", "late")


async def test_write_status_retries_with_the_whole_status(store: KVStore) -> None:
    ours, theirs = await stale_machine(store)
    ours.status.phase = "Provisioning"
    ours.status.provider_id = "sim://m"
    out = await write_status(store, ours)
    assert int(out.metadata.resource_version) > int(theirs.metadata.resource_version)
    stored = await store.get(Machine, "m", NS)
    assert (stored.status.phase, stored.status.provider_id) == ("Provisioning", "sim://m")
    assert stored.spec.update_group == "late"
    assert stored.metadata.generation == theirs.metadata.generation


async def test_status_writer_merges_only_its_own_fields(store: KVStore) -> None:
    """Two controllers report on one machine: each keeps the fields (and condition types)
    the other wrote meanwhile, and the spec change of a third writer survives too."""
    obj = await store.create(Machine(metadata=ObjectMeta(name="m", namespace=NS),
                                     spec=MachineSpec(cluster="c1", region="local")))
    async with status_writer(store, obj) as m:
        m.status.lcm_phase = "Deploy"
        conditions.mark_false(m.status, "LCMReady", "Deploying")
        # Meanwhile the provider writes its part of the status, and a user the spec.
        provider = await store.get(Machine, "m", NS)
        provider.status.provider_id = "sim://m"
        conditions.mark_true(provider.status, "ProviderReady", "NodeRunning")
        await store.update_status(provider)
        user = await store.get(Machine, "m", NS)
        user.spec.update_group = "late"
        await store.update(user)
    stored = await store.get(Machine, "m", NS)
    assert stored.status.lcm_phase == "Deploy"
    assert stored.status.provider_id == "sim://m"
    assert {c.type: c.status for c in stored.status.conditions} == {
        "LCMReady": "False", "ProviderReady": "True",
    }
    assert stored.spec.update_group == "late"


async def test_status_writer_writes_nothing_when_nothing_changed(store: KVStore) -> None:
    obj = await store.create(Machine(metadata=ObjectMeta(name="m", namespace=NS),
                                     spec=MachineSpec(cluster="c1", region="local")))
    async with status_writer(store, obj) as m:
        m.status.phase = m.status.phase  # read-only pass
    stored = await store.get(Machine, "m", NS)
    assert stored.metadata.resource_version == obj.metadata.resource_version


async def test_derived_ready_rides_along_and_follows_the_merged_status(store: KVStore) -> None:
    """LCM reports its half while the provider wrote the other half meanwhile: the one write
    carries Ready computed from both halves as stored, not from LCM's stale copy."""
    obj = await store.create(Machine(metadata=ObjectMeta(name="m", namespace=NS),
                                     spec=MachineSpec(cluster="c1", region="local")))
    async with status_writer(store, obj, derive=conditions.summarize_machine) as m:
        conditions.mark_true(m.status, "LCMReady", "Ready")
        provider = await store.get(Machine, "m", NS)
        conditions.mark_true(provider.status, "ProviderReady", "NodeRunning")
        provider = await store.update_status(provider)
    stored = await store.get(Machine, "m", NS)
    # One write after the provider's: no separate write for the summary.
    assert int(stored.metadata.resource_version) == int(provider.metadata.resource_version) + 1
    assert {c.type: c.status for c in stored.status.conditions} == {
        "Ready": "True", "LCMReady": "True", "ProviderReady": "True",
    }

    async with status_writer(store, stored, derive=conditions.summarize_machine) as m:
        conditions.mark_false(m.status, "ProviderReady", "Deprovisioning", "deleting the node",
                              "Info")
    stored = await store.get(Machine, "m", NS)
    ready = conditions.get(stored.status, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", "Deprovisioning")
