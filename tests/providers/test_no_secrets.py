"""No secret in status, events or logs, through failing and succeeding operations of all
three providers: bad credentials, quota, timeouts, and a machine that provisions.

Each test drives the provider's Machine reconciler on the real store + bus with logging at
DEBUG for every library (keystoneauth, openstacksdk, sushy, urllib3, ...), then checks the
Machine (and BareMetalHost) status, every bus message and every log line (see leaks.py).
Bare metal has no quota; its capacity error (NoCapacity) stands in for it.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from msgspec import to_builtins
from nats.aio.client import Client as NATS
from pyVmomi import vim

from services.providers.baremetal.adapter import ADDRESSES_ANNOTATION, BareMetalProvider
from services.providers.baremetal.hosts import HostTargets
from services.providers.baremetal.inventory import BMC_REACHABLE, HostReconciler
from services.providers.machines import MachineReconciler
from services.providers.openstack import OpenStackProvider
from services.providers.steps import PROVIDER_READY, Backoff
from services.providers.targets import CredentialTargets
from services.providers.vsphere import VsphereProvider
from shared.models import (
    BareMetalHost,
    Cluster,
    Machine,
    OpenStackCredential,
    VsphereCredential,
    VsphereMachineSpec,
    convert,
)
from shared.runtime import Request, TransientError
from shared.runtime import conditions as cond
from shared.store import NotFound
from tests.fakes.openstack import FakeOpenStack
from tests.harness import Harness
from tests.providers.leaks import LeakWatch, forms
from tests.providers.peers import ImageServer, SushyEmulator, Vcsim, fake_system
from tests.providers.vcenter import credential as vsphere_credential
from tests.providers.vcenter import report_guest_ip, spec_fields, vms_named
from tests.waiting import eventually

REGION = "region-one"
REQ = Request("w0", "default")


@pytest.fixture
async def watch(
    h: Harness, nc: NATS, prefix: str, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[LeakWatch]:
    w = await LeakWatch(nc, prefix, caplog).start()
    yield w
    await w.stop()


async def make_cluster(h: Harness, provider: str, credential: str = "") -> None:
    await h.store.create(convert(Cluster, {
        "metadata": {"name": "c", "namespace": "default"},
        "spec": {"region": REGION, "provider": provider, "release": "mke-7-1-0",
                 "credential": credential}}))


async def make_machine(h: Harness, **spec: Any) -> None:
    await h.store.create(convert(Machine, {
        "metadata": {"name": "w0", "namespace": "default"},
        "spec": {"cluster": "c", "region": REGION, **spec}}))


async def reason_after(rec: MachineReconciler, h: Harness) -> str:
    """One reconcile; the ProviderReady reason it leaves."""
    try:
        await rec.reconcile(REQ)
    except TransientError:
        pass
    m = await h.store.get(Machine, "w0", "default")
    c = cond.get(m.status, PROVIDER_READY)
    return c.reason if c else ""


async def delete_machine(rec: MachineReconciler, h: Harness) -> None:
    await h.store.delete(Machine, "w0", "default")

    async def gone() -> bool:
        try:
            await rec.reconcile(REQ)
            await h.store.get(Machine, "w0", "default")
        except TransientError:
            return False
        except NotFound:
            return True
        return False

    await eventually(gone, timeout=20, interval=0.1, what="machine deleted")


async def set_credential(h: Harness, kind: type, name: str, change: Any) -> None:
    cred = await h.store.get(kind, name, "default")
    change(cred.spec)
    await h.store.update(cred)


# --- OpenStack -------------------------------------------------------------------------------

OS_PASSWORD = "os-Pa55-topsecret"


@pytest.fixture
def cloud() -> Iterator[FakeOpenStack]:
    fake = FakeOpenStack(build_seconds=0.1, delete_seconds=0.1).start()
    fake.add_user("demo", OS_PASSWORD, "demo-project")
    fake.add_image("ubuntu-22.04")
    fake.add_flavor("m1.medium", vcpus=2, ram=4096)
    fake.add_network("private", cidr="10.0.0.0/24")
    fake.add_network("public", cidr="172.24.4.0/24", external=True)
    yield fake
    fake.stop()


async def test_openstack_secrets_stay_out(
    h: Harness, watch: LeakWatch, cloud: FakeOpenStack
) -> None:
    app_id, app_secret = cloud.add_app_credential("demo", "demo-project")
    wrong = "wrong-os-hunter2"
    await h.store.create(convert(OpenStackCredential, {
        "metadata": {"name": "cloud", "namespace": "default"},
        "spec": {"region": REGION, "auth": {"authUrl": cloud.auth_url, "username": "demo",
                                            "password": wrong, "projectName": "demo-project"}}}))
    await make_cluster(h, "openstack", "cloud")
    await make_machine(h, openstack={"flavor": "m1.medium", "image": "ubuntu-22.04",
                                     "network": "private", "floatingNetwork": "public"})
    targets = CredentialTargets(h.store, OpenStackCredential,
                                # Room for a loaded machine: only the stall below may
                                # time out (0.5 s once did in CI: ProviderTimeout where
                                # QuotaExceeded was due).
                                lambda c: OpenStackProvider(c, timeout=2.0),
                                provider="openstack")
    rec = MachineReconciler(h.store, "openstack", targets, region=REGION, poll_interval=0.1,
                            backoff=Backoff(initial=0.1, cap=0.5))
    try:
        assert await reason_after(rec, h) == "InvalidCredentials"

        def wrong_app_secret(spec: Any) -> None:
            spec.auth.password, spec.auth.username = "", ""
            spec.auth.application_credential_id = app_id
            spec.auth.application_credential_secret = "wrong-app-hunter3"

        await set_credential(h, OpenStackCredential, "cloud", wrong_app_secret)
        assert await reason_after(rec, h) == "InvalidCredentials"

        def right_app_secret(spec: Any) -> None:
            spec.auth.application_credential_secret = app_secret

        await set_credential(h, OpenStackCredential, "cloud", right_app_secret)
        cloud.instance_quota = 0
        assert await reason_after(rec, h) == "QuotaExceeded"
        cloud.instance_quota, cloud.stall_seconds = 10, 6
        assert await reason_after(rec, h) == "ProviderTimeout"
        cloud.stall_seconds = 0

        def back_to_password(spec: Any) -> None:
            spec.auth.application_credential_id = spec.auth.application_credential_secret = ""
            spec.auth.username, spec.auth.password = "demo", OS_PASSWORD

        await set_credential(h, OpenStackCredential, "cloud", back_to_password)
        await eventually(lambda: _running(rec, h), timeout=15, interval=0.1, what="running")
        machine = await h.store.get(Machine, "w0", "default")
        await delete_machine(rec, h)
    finally:
        await targets.close()
    secrets = [*forms(OS_PASSWORD, "demo"), *forms(wrong, "demo"), app_secret,
               "wrong-app-hunter3"]
    watch.assert_clean(secrets, [machine])


async def _running(rec: MachineReconciler, h: Harness) -> bool:
    return await reason_after(rec, h) == "NodeRunning"


# --- vSphere ---------------------------------------------------------------------------------


async def test_vsphere_secrets_stay_out(
    h: Harness, watch: LeakWatch, vcsim: Vcsim, admin: Any, silent_port: int
) -> None:
    wrong = "wrong-vc-hunter2"
    await h.store.create(vsphere_credential(vcsim.host, vcsim.port, wrong, name="vc"))
    await make_cluster(h, "vsphere", "vc")
    await make_machine(h, vsphere=to_builtins(VsphereMachineSpec(**spec_fields())))
    quota_on_clone: list[bool] = []

    def factory(cred: VsphereCredential) -> VsphereProvider:
        provider = VsphereProvider(cred, timeout=1)
        original = provider.session.call

        def call(what: str, fn: Any) -> Any:
            if what == "clone" and quota_on_clone:
                def full() -> Any:  # what vCenter answers when the cluster is full
                    raise vim.fault.InsufficientResourcesFault(
                        msg=f"Insufficient memory resources (session of {cred.spec.password})")
                return original(what, full)
            return original(what, fn)

        provider.session.call = call  # type: ignore[method-assign]
        return provider

    targets = CredentialTargets(h.store, VsphereCredential, factory, provider="vsphere")
    rec = MachineReconciler(h.store, "vsphere", targets, region=REGION, poll_interval=0.1,
                            backoff=Backoff(initial=0.1, cap=0.5))
    try:
        assert await reason_after(rec, h) == "InvalidCredentials"

        def silent(spec: Any) -> None:
            spec.port, spec.password = silent_port, vcsim.password

        await set_credential(h, VsphereCredential, "vc", silent)
        assert await reason_after(rec, h) == "ProviderTimeout"

        def right(spec: Any) -> None:
            spec.port = vcsim.port

        await set_credential(h, VsphereCredential, "vc", right)
        quota_on_clone.append(True)
        assert await reason_after(rec, h) == "QuotaExceeded"
        quota_on_clone.clear()

        async def running() -> bool:
            m = await h.store.get(Machine, "w0", "default")
            if m.status.provider_id and not m.status.addresses:
                name = m.status.provider_steps[0].message.removeprefix("node ")
                for vm in vms_named(admin, name):
                    await asyncio.to_thread(report_guest_ip, vm, "10.20.30.50")
            return await _running(rec, h)

        await eventually(running, timeout=20, interval=0.1, what="running")
        machine = await h.store.get(Machine, "w0", "default")
        await delete_machine(rec, h)
    finally:
        await targets.close()
    watch.assert_clean([*forms(vcsim.password, "admin"), *forms(wrong, "admin")], [machine])


# --- bare metal ------------------------------------------------------------------------------

BMC_PASSWORD = "bmc-Pa55-topsecret"


async def test_baremetal_secrets_stay_out(
    h: Harness, watch: LeakWatch, tmp_path: pathlib.Path, image_server: ImageServer,
    silent_port: int
) -> None:
    sys9 = fake_system(9)
    emu = SushyEmulator(tmp_path / "authed", [sys9], users={"admin": BMC_PASSWORD}).start()
    wrong = "wrong-bmc-hunter2"
    await h.store.create(convert(BareMetalHost, {
        "metadata": {"name": "host-9", "namespace": "default", "labels": {"rack": "a"},
                     "annotations": {ADDRESSES_ANNOTATION: "192.0.2.19"}},
        "spec": {"region": REGION, "bmc": {"address": emu.system_address(sys9["uuid"]),
                                           "username": "admin", "password": wrong},
                 "bootMacAddress": sys9["nics"][0]["mac"]}}))
    await make_cluster(h, "baremetal")
    await make_machine(h, baremetal={"hostSelector": {"rack": "z"}, "image": "ubuntu-22.04"})

    def factory(host: BareMetalHost) -> BareMetalProvider:
        return BareMetalProvider(host, image_base_url=image_server.url, timeout=0.5)

    hosts = HostReconciler(h.store, region=REGION, factory=factory)
    rec = MachineReconciler(h.store, "baremetal", HostTargets(h.store, factory=factory),
                            region=REGION, poll_interval=0.1,
                            backoff=Backoff(initial=0.1, cap=0.5))

    async def bmc_reason() -> str:
        try:
            await hosts.reconcile(Request("host-9", "default"))
        except TransientError:
            pass
        host = await h.store.get(BareMetalHost, "host-9", "default")
        c = cond.get(host.status, BMC_REACHABLE)
        return c.reason if c else ""

    try:
        assert await reason_after(rec, h) == "NoCapacity"  # no host in rack z
        machine = await h.store.get(Machine, "w0", "default")
        machine.spec.baremetal.host_selector = {"rack": "a"}  # type: ignore[union-attr]
        await h.store.update(machine)
        assert await bmc_reason() == "InvalidCredentials"
        assert await reason_after(rec, h) == "InvalidCredentials"

        def silent(spec: Any) -> None:
            spec.bmc.password = BMC_PASSWORD
            spec.bmc.address = f"redfish+http://127.0.0.1:{silent_port}/redfish/v1/Systems/x"

        await set_credential(h, BareMetalHost, "host-9", silent)
        assert await reason_after(rec, h) == "ProviderTimeout"  # sushy retries: ~5 s

        def right(spec: Any) -> None:
            spec.bmc.address = emu.system_address(sys9["uuid"])

        await set_credential(h, BareMetalHost, "host-9", right)
        assert await bmc_reason() != "InvalidCredentials"

        async def powering_on() -> bool:  # inserted media and asked for power: enough BMC
            await reason_after(rec, h)
            m = await h.store.get(Machine, "w0", "default")
            return any(s.name == "PowerOn" for s in m.status.provider_steps)

        await eventually(powering_on, timeout=20, interval=0.2, what="power-on requested")
        machine = await h.store.get(Machine, "w0", "default")
        host = await h.store.get(BareMetalHost, "host-9", "default")
    finally:
        emu.stop()
    watch.assert_clean([*forms(BMC_PASSWORD, "admin"), *forms(wrong, "admin")],
                       [machine, host])
