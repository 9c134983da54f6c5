"""vSphere adapter against the real govmomi vCenter simulator (built from Debian's source)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.providers.contract import wait_for
from services.providers.errors import (
    CredentialsError,
    InvalidSpecError,
    ProviderTimeout,
    ProviderUnavailable,
)
from services.providers.vsphere import VsphereProvider
from tests.providers.peers import Vcsim, free_port
from tests.providers.vcenter import credential, report_guest_ip, request, vms_named
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
