"""vSphere adapter against the real govmomi vCenter simulator (built from Debian's source)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pyVmomi import vim

from services.providers.contract import wait_for
from services.providers.errors import (
    CredentialsError,
    InvalidSpecError,
    ProviderTimeout,
    ProviderUnavailable,
    QuotaError,
)
from services.providers.vsphere import VsphereProvider
from services.providers.vsphere.session import Session, translate
from tests.providers.peers import Vcsim, free_port
from tests.providers.vcenter import (
    credential,
    report_guest,
    report_guest_ip,
    request,
    vms_named,
)
from tests.waiting import eventually


async def test_clone_power_ip_destroy(vcsim: Vcsim, admin: Any) -> None:
    provider = VsphereProvider(credential(vcsim.host, vcsim.port, vcsim.password), timeout=10)
    req = request()
    try:
        assert await provider.find(req) is None
        ref = await provider.create(req)
        assert ref.name == req.node_name and ref.provider_id.startswith("vsphere://")
        # Idempotent across restarts: a fresh adapter finds the same VM, no second clone.
        again = VsphereProvider(credential(vcsim.host, vcsim.port, vcsim.password))
        assert await again.create(req) == ref
        await again.close()
        [vm] = vms_named(admin, req.node_name)
        assert vm.datastore[0].name == "LocalDS_1"
        assert vm.resourcePool.owner.name == "DC0_C0"
        keys = {o.key: o.value for o in vm.config.extraConfig}
        assert keys["guestinfo.ccloud-machine-uid"] == req.machine_uid

        info = await provider.inspect(ref)
        assert (info.cpus, info.memory_mib) == (4, 8192) and info.nics
        assert (await provider.status(ref)).phase == "Stopped"

        await provider.power(ref, on=True)
        await provider.power(ref, on=True)
        st = await wait_for(provider, ref, phase="Running", timeout=10)
        assert st.power_state == "On"
        await asyncio.to_thread(report_guest_ip, vm, "10.20.30.40")
        addrs = await eventually(lambda: provider.addresses(ref), timeout=10, what="guest IP")
        assert addrs == ["10.20.30.40"]

        # A graceful off: without VMware Tools in the guest the VM is powered off; with Tools
        # running (what the guest reports, vcsim takes it as extraConfig) the guest is asked
        # to shut down instead.
        for running in (False, True):
            if running:
                await asyncio.to_thread(report_guest, vm, "toolsRunningStatus",
                                        "guestToolsRunning")
            await provider.power(ref, on=False, graceful=True)
            st = await wait_for(provider, ref, phase="Stopped", timeout=10)
            assert st.power_state == "Off"
            await provider.power(ref, on=True)
            await wait_for(provider, ref, phase="Running", timeout=10)

        assert await provider.delete(ref) is True
        assert vms_named(admin, req.node_name) == []
        assert await provider.delete(ref) is True
    finally:
        await provider.close()


async def test_folder_and_placement_errors(vcsim: Vcsim, admin: Any) -> None:
    provider = VsphereProvider(credential(vcsim.host, vcsim.port, vcsim.password))
    cases = [
        ({"datacenter": "DC9"}, "datacenter"),
        ({"template": "no-such-template"}, "template"),
        ({"cluster": "C9"}, "cluster"),
        ({"datastore": "NoDS"}, "datastore"),
        ({"folder": "missing/sub"}, "folder"),
    ]
    for over, word in cases:
        with pytest.raises(InvalidSpecError, match=word) as err:
            await provider.create(request(uid=f"{word}-uid", **over))
        assert not err.value.transient
    await provider.close()


async def test_bad_password(vcsim: Vcsim, admin: Any) -> None:
    provider = VsphereProvider(credential(vcsim.host, vcsim.port, "not-it-hunter2"))
    with pytest.raises(CredentialsError) as err:
        await provider.find(request())
    assert err.value.reason == "InvalidCredentials" and err.value.code == "InvalidLogin"
    assert "hunter2" not in str(err.value)
    await provider.close()


async def test_unreachable_vcenter() -> None:
    provider = VsphereProvider(credential("127.0.0.1", free_port(), "x"), timeout=2)
    with pytest.raises(ProviderUnavailable):
        await provider.find(request())


async def test_silent_vcenter_times_out(silent_port: int) -> None:
    provider = VsphereProvider(credential("127.0.0.1", silent_port, "x"), timeout=1)
    with pytest.raises(ProviderTimeout):
        await provider.find(request())


def make_folder(admin: Any, path: str) -> Any:
    """What the vSphere admin does before handing a folder to a cluster."""
    dc = next(e for e in admin.rootFolder.childEntity if e.name == "DC0")
    folder = dc.vmFolder
    for part in path.split("/"):
        sub = next((f for f in folder.childEntity if f.name == part), None)
        folder = sub or folder.CreateFolder(part)
    return folder


async def test_clone_into_named_folder(vcsim: Vcsim, admin: Any) -> None:
    target = await asyncio.to_thread(make_folder, admin, "ccloud/workers")
    provider = VsphereProvider(credential(vcsim.host, vcsim.port, vcsim.password))
    req = request(uid="f01de700-0000-4000-8000-000000000001", folder="/ccloud/workers/")
    try:
        ref = await provider.create(req)
        [vm] = vms_named(admin, req.node_name)
        assert vm.parent == target and vm.parent.parent.name == "ccloud"
        assert await provider.find(req) == ref
        # The folder is part of where the node lives: the datacenter root has no such VM.
        elsewhere = request(uid=req.machine_uid, folder="")
        assert await provider.find(elsewhere) is None
        assert await provider.delete(ref) is True
        assert vms_named(admin, req.node_name) == []
    finally:
        await provider.close()


@pytest.mark.parametrize(
    "fault",
    [vim.fault.InsufficientResourcesFault(msg="Insufficient memory resources on DC0_C0"),
     vim.fault.NoDiskSpace(msg="No space on LocalDS_1", datastore="LocalDS_1")],
)
def test_vcenter_capacity_faults_are_quota(fault: Exception) -> None:
    """vcsim never raises these: checked where pyVmomi hands them to the adapter."""
    session = Session(credential("127.0.0.1", 1, "s3cret-vc-pw"), timeout=1)

    def clone() -> None:
        raise fault

    with pytest.raises(QuotaError) as err:
        session.call("clone", clone)
    assert err.value.reason == "QuotaExceeded" and err.value.transient
    assert err.value.code == type(fault).__name__.rpartition(".")[2]
    assert str(err.value).startswith("vsphere: clone: ") and fault.msg in str(err.value)


def test_fault_text_echoing_the_password_is_scrubbed() -> None:
    fault = vim.fault.InsufficientResourcesFault(msg="quota for login s3cret-vc-pw exceeded")
    err = translate(fault, what="clone", secrets=("s3cret-vc-pw",))
    assert isinstance(err, QuotaError) and "s3cret-vc-pw" not in str(err) and "***" in str(err)
