"""vSphere sessions that expire mid-operation, against the real govmomi simulator.

vCenter ends idle sessions on its side; the adapter must log in again and carry on with
the objects it already holds (the template it clones, the task it waits on, the VM it
powers), so the Machine never shows ``InvalidCredentials`` for an expired session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from msgspec import to_builtins

from services.providers.contract import wait_for
from services.providers.machines import MachineReconciler
from services.providers.steps import PROVIDER_READY, Backoff
from services.providers.targets import CredentialTargets
from services.providers.vsphere import VsphereProvider
from services.providers.vsphere.session import Session
from shared.models import Cluster, Machine, VsphereCredential, VsphereMachineSpec, convert
from shared.runtime import Request
from shared.runtime import conditions as cond
from shared.store import NotFound
from tests.harness import Harness
from tests.providers.peers import Vcsim
from tests.providers.vcenter import (
    REGION,
    credential,
    report_guest_ip,
    request,
    spec_fields,
    vms_named,
)
from tests.waiting import eventually

T = TypeVar("T")


def end_other_sessions(admin: Any) -> int:
    """What vCenter does to an idle session: end it server side (all but the admin's own)."""
    sm = admin.sessionManager
    mine = sm.currentSession.key
    others = [s.key for s in sm.sessionList or [] if s.key != mine]
    if others:
        sm.TerminateSession(others)
    return len(others)


def expire_before_every_call(
    session: Session, admin: Any, expired: list[str] | None = None
) -> list[str]:
    """Make every provider call meet an expired session; returns the calls it expired."""
    original = session.call
    expired = [] if expired is None else expired

    def call(what: str, fn: Callable[[], T]) -> T:
        if session.logins and end_other_sessions(admin):
            expired.append(what)
        return original(what, fn)

    session.call = call  # type: ignore[method-assign]
    return expired


async def test_expired_session_is_renewed_mid_operation(vcsim: Vcsim, admin: Any) -> None:
    provider = VsphereProvider(credential(vcsim.host, vcsim.port, vcsim.password), timeout=10)
    expired = expire_before_every_call(provider.session, admin)
    req = request(uid="5e55e55e-0000-4000-8000-000000000001")
    try:
        ref = await provider.create(req)  # finds, clones (task held across expiry), resizes
        assert {"clone", "find template", "read vm"} <= set(expired)
        assert (await provider.inspect(ref)).cpus == 4
        await provider.power(ref, on=True)
        await wait_for(provider, ref, phase="Running", timeout=15, interval=0.1)
        [vm] = vms_named(admin, req.node_name)
        await asyncio.to_thread(report_guest_ip, vm, "10.20.30.41")
        addrs = await eventually(lambda: provider.addresses(ref), timeout=10, what="guest IP")
        assert addrs == ["10.20.30.41"]
        assert await provider.delete(ref) is True
        assert vms_named(admin, req.node_name) == []
        # One fresh login per expiry, no more: each retry reused the objects it held.
        assert "destroy" in expired and provider.session.logins == len(expired) + 1
    finally:
        await provider.close()


async def test_machine_never_shows_invalid_credentials(
    h: Harness, vcsim: Vcsim, admin: Any
) -> None:
    expired: list[str] = []

    def factory(cred: VsphereCredential) -> VsphereProvider:
        provider = VsphereProvider(cred, timeout=10)
        expire_before_every_call(provider.session, admin, expired)
        return provider

    await h.store.create(credential(vcsim.host, vcsim.port, vcsim.password, name="vc-expiry"))
    await h.store.create(convert(Cluster, {
        "metadata": {"name": "vs", "namespace": "default"},
        "spec": {"region": REGION, "provider": "vsphere", "release": "mke-7-1-0",
                 "credential": "vc-expiry"}}))
    await h.store.create(convert(Machine, {
        "metadata": {"name": "w0", "namespace": "default"},
        "spec": {"cluster": "vs", "region": REGION,
                 "vsphere": to_builtins(VsphereMachineSpec(**spec_fields()))}}))
    targets = CredentialTargets(h.store, VsphereCredential, factory, provider="vsphere")
    rec = MachineReconciler(h.store, "vsphere", targets, region=REGION, poll_interval=0.1,
                            backoff=Backoff(initial=0.1, cap=0.5))
    req = Request("w0", "default")
    seen: set[str] = set()

    async def running() -> Machine | None:
        await rec.reconcile(req)  # a TransientError fails the test: no step may fail
        m = await h.store.get(Machine, "w0", "default")
        c = cond.get(m.status, PROVIDER_READY)
        seen.add(c.reason if c else "")
        steps = {s.name: s.state for s in m.status.provider_steps}
        if steps.get("PowerOn") == "Done" and not m.status.addresses:
            node = m.status.provider_steps[0].message.removeprefix("node ")
            for vm in vms_named(admin, node):  # the guest's VMware tools report its IP
                await asyncio.to_thread(report_guest_ip, vm, "10.20.30.42")
        return m if m.status.phase == "Running" else None

    try:
        m = await eventually(running, timeout=30, interval=0.1, what="machine running")
        assert m.status.addresses == ["10.20.30.42"]
        assert "InvalidCredentials" not in seen and seen >= {"Provisioning", "NodeRunning"}
        assert "clone" in expired
    finally:
        await h.store.delete(Machine, "w0", "default")
        await eventually(lambda: _deleted(rec, h, req), timeout=30, interval=0.1,
                         what="machine deleted")
        await targets.close()


async def _deleted(rec: MachineReconciler, h: Harness, req: Request) -> bool:
    try:
        await rec.reconcile(req)
        await h.store.get(Machine, req.name, req.namespace)
    except NotFound:
        return True
    return False
