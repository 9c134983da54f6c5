"""LCM's Machine pass sets a new Machine's Ready only if neither half (provider, LCM) has
within a grace period: the halves set it in their own writes, so an early one would be a
write per Machine that the provider's first replaces a moment later."""

from __future__ import annotations

import pytest

from services.lcm import machine as lcm_machine
from services.lcm.machine import FINALIZER, READY_GRACE, MachineReconciler
from shared.models import Machine, MachineSpec, ObjectMeta
from shared.runtime import Request, status_writer
from shared.runtime import conditions as cond
from shared.store.kv import KVStore

NS = "default"


async def new_machine(store: KVStore, name: str) -> Machine:
    return await store.create(Machine(
        metadata=ObjectMeta(name=name, namespace=NS),
        spec=MachineSpec(cluster="c", role="worker", region="local"),
    ))


async def test_a_new_machine_waits_for_its_halves_to_set_ready(kv_store: KVStore) -> None:
    await new_machine(kv_store, "m0")
    reconciler = MachineReconciler(kv_store)

    result = await reconciler.reconcile(Request("m0", NS))
    assert result is not None and 0 < (result.requeue_after or 0) <= READY_GRACE
    m = await kv_store.get(Machine, "m0", NS)
    assert FINALIZER in m.metadata.finalizers
    assert cond.get(m.status, cond.READY) is None

    # The provider's first write sets Ready with its half ...
    async with status_writer(kv_store, m, derive=cond.summarize_machine) as w:
        cond.mark_false(w.status, "ProviderReady", "Provisioning", "provisioning", "Info")
    written = await kv_store.get(Machine, "m0", NS)
    ready = cond.get(written.status, cond.READY)
    assert ready is not None and ready.reason == "Provisioning"
    # ... and LCM's pass has nothing to add.
    assert await reconciler.reconcile(Request("m0", NS)) is None
    after = await kv_store.get(Machine, "m0", NS)
    assert after.metadata.resource_version == written.metadata.resource_version


async def test_a_machine_no_half_wrote_says_what_it_waits_for(
    kv_store: KVStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_machine(kv_store, "m1")
    monkeypatch.setattr(lcm_machine, "READY_GRACE", 0.0)  # the grace is over

    assert await MachineReconciler(kv_store).reconcile(Request("m1", NS)) is None
    ready = cond.get((await kv_store.get(Machine, "m1", NS)).status, cond.READY)
    assert ready is not None and ready.status == "False"
    assert ready.message == "waiting for ProviderReady, LCMReady"
