"""The Machine reconciler over the vSphere adapter and the govmomi simulator: a VM whose
guest never reports an IP fails its Addresses step with a clear ProviderTimeout condition
once the provisioning step timeout passes, and is retried (the step starts over)."""

from __future__ import annotations

from typing import Any

from msgspec import to_builtins

from services.providers.machines import MachineReconciler
from services.providers.steps import PROVIDER_READY, Backoff
from services.providers.targets import CredentialTargets
from services.providers.vsphere import VsphereProvider
from shared.models import Cluster, Machine, VsphereCredential, VsphereMachineSpec, convert
from shared.runtime import Request, TransientError
from shared.runtime import conditions as cond
from shared.store import NotFound
from tests.harness import Harness
from tests.providers.peers import Vcsim
from tests.providers.vcenter import REGION, credential, spec_fields, vms_named
from tests.waiting import eventually

REQ = Request("w0", "default")


async def test_guest_without_ip_times_out_with_a_clear_condition(
    h: Harness, vcsim: Vcsim, admin: Any
) -> None:
    await h.store.create(credential(vcsim.host, vcsim.port, vcsim.password, name="vc"))
    await h.store.create(convert(Cluster, {
        "metadata": {"name": "vs", "namespace": "default"},
        "spec": {"region": REGION, "provider": "vsphere", "release": "mke-7-1-0",
                 "credential": "vc"}}))
    await h.store.create(convert(Machine, {
        "metadata": {"name": "w0", "namespace": "default"},
        "spec": {"cluster": "vs", "region": REGION,
                 "vsphere": to_builtins(VsphereMachineSpec(**spec_fields()))}}))
    targets = CredentialTargets(h.store, VsphereCredential,
                                lambda c: VsphereProvider(c, timeout=10), provider="vsphere")
    rec = MachineReconciler(h.store, "vsphere", targets, region=REGION, poll_interval=0.1,
                            provision_timeout=1, backoff=Backoff(initial=0.1, cap=0.5))
    failures: list[TransientError] = []

    async def timed_out() -> Machine | None:
        try:
            await rec.reconcile(REQ)
        except TransientError as e:
            failures.append(e)
        m = await h.store.get(Machine, "w0", "default")
        c = cond.get(m.status, PROVIDER_READY)
        return m if c is not None and c.reason == "ProviderTimeout" else None

    try:
        m = await eventually(timed_out, timeout=15, interval=0.2, what="Addresses timeout")
        c = cond.get(m.status, PROVIDER_READY)
        assert c is not None and (c.status, c.severity) == ("False", "Warning")
        assert c.message.startswith("vsphere: step Addresses not done after ")
        assert c.message.endswith("s: waiting for the node's addresses")
        steps = {s.name: s.state for s in m.status.provider_steps}
        assert steps == {"Create": "Done", "Inspect": "Done", "PowerOn": "Done",
                         "Addresses": "Failed"}
        assert m.status.phase == "Provisioning" and m.status.addresses == []
        assert len(failures) == 1 and "ProviderTimeout" in str(failures[0])
        # Transient: the next pass waits for the addresses again, with a fresh clock.
        await rec.reconcile(REQ)
        m = await h.store.get(Machine, "w0", "default")
        assert {s.name: s.state for s in m.status.provider_steps}["Addresses"] == "InProgress"
        node = m.status.provider_steps[0].message.removeprefix("node ")
        assert len(vms_named(admin, node)) == 1, "the VM is kept, not cloned again"
    finally:
        await h.store.delete(Machine, "w0", "default")

        async def gone() -> bool:
            try:
                await rec.reconcile(REQ)
                await h.store.get(Machine, "w0", "default")
            except NotFound:
                return True
            return False

        await eventually(gone, timeout=20, interval=0.1, what="machine deleted")
        await targets.close()
