"""Bare-metal adapter against the real sushy-tools Redfish emulator (fake driver).

The emulator applies power changes 1-11 s after the request, so these tests wait on
state (``wait_for`` / ``eventually``) with timeouts above that.
"""

from __future__ import annotations

import pathlib

import pytest
import sushy

from services.providers.baremetal import BareMetalProvider, BMCAddress, image_url
from services.providers.baremetal.adapter import ADDRESSES_ANNOTATION
from services.providers.contract import NodeRequest, wait_for
from services.providers.errors import (
    CredentialsError,
    InvalidSpecError,
    NoCapacityError,
    NotFoundError,
    ProviderTimeout,
    ProviderUnavailable,
)
from shared.models import BareMetalHost, BareMetalMachineSpec, convert
from tests.providers.peers import ImageServer, SushyEmulator, fake_system
from tests.waiting import eventually

UID = "6f1c2d3e-0000-4000-8000-00000000abcd"


def host(
    address: str,
    *,
    name: str = "bm-host",
    consumer: str = UID,
    username: str = "admin",
    password: str = "",
    annotations: dict[str, str] | None = None,
) -> BareMetalHost:
    return convert(
        BareMetalHost,
        {
            "metadata": {
                "name": name,
                "namespace": "default",
                "uid": "h-" + name,
                "annotations": annotations or {},
            },
            "spec": {
                "region": "region-one",
                "bmc": {"address": address, "username": username, "password": password},
                "bootMacAddress": "52:54:00:00:00:01",
                "consumer": consumer,
            },
        },
    )


def request(image: str = "ubuntu-22.04") -> NodeRequest:
    return NodeRequest(
        machine_uid=UID,
        machine_name="worker-0",
        namespace="default",
        cluster="demo",
        region="region-one",
        spec=BareMetalMachineSpec(image=image),
    )


def redfish_system(emu: SushyEmulator, uuid: str):  # noqa: ANN201
    client = sushy.Sushy(f"{emu.url}/redfish/v1", username="x", password="y")
    return client.get_system(f"/redfish/v1/Systems/{uuid}")


def test_bmc_address_forms() -> None:
    a = BMCAddress("redfish+http://10.0.0.5:8000/redfish/v1/Systems/abc")
    assert (a.root, a.system_path) == ("http://10.0.0.5:8000/redfish/v1", "/redfish/v1/Systems/abc")
    b = BMCAddress("redfish://bmc.example", system_id="1")
    assert (b.root, b.system_path) == ("https://bmc.example/redfish/v1", "/redfish/v1/Systems/1")
    assert BMCAddress("https://u:p@bmc:443").root == "https://bmc:443/redfish/v1"
    with pytest.raises(InvalidSpecError, match="unsupported BMC address"):
        BMCAddress("ipmi://10.0.0.5")
    assert image_url("ubuntu", "http://img/") == "http://img/ubuntu.iso"
    assert image_url("http://x/y.iso", "http://img") == "http://x/y.iso"
    with pytest.raises(InvalidSpecError):
        image_url("../etc", "http://img")
    # A deployment without an image server still takes URLs; a name says what is missing.
    assert image_url("http://x/y.iso", "") == "http://x/y.iso"
    with pytest.raises(InvalidSpecError, match="CCLOUD_BAREMETAL_IMAGE_BASE_URL"):
        image_url("ubuntu", "")


async def test_provision_power_and_deprovision(
    redfish: SushyEmulator, image_server: ImageServer
) -> None:
    system = fake_system(1)
    bmh = host(
        redfish.system_address(system["uuid"]),
        annotations={ADDRESSES_ANNOTATION: "192.0.2.11, 10.0.0.11"},
    )
    provider = BareMetalProvider(bmh, image_base_url=image_server.url, timeout=10)
    try:
        req = request()
        assert await provider.find(req) is not None  # the claim is what find looks at
        ref = await provider.create(req)
        assert ref.provider_id == "baremetal:///default/bm-host"

        # The emulator now has the image inserted and a boot override to the CD.
        raw = redfish_system(redfish, system["uuid"])
        cd = raw.virtual_media.get_member(raw.virtual_media.members_identities[0])
        assert cd.inserted and cd.image == f"{image_server.url}/ubuntu-22.04.iso"
        assert raw.boot.target == sushy.BOOT_SOURCE_TARGET_CD

        # Re-running create (at-least-once delivery) changes nothing and does not fail.
        assert await provider.create(req) == ref

        info = await provider.inspect(ref)
        assert info.system_uuid == system["uuid"]
        assert info.nics == [system["nics"][0]["mac"]]

        st = await provider.status(ref)
        assert st.phase == "Provisioning" and st.power_state == "Off" and st.addresses == []

        await provider.power(ref, on=True)
        await provider.power(ref, on=True)  # idempotent while the BMC applies it
        st = await wait_for(provider, ref, phase="Running", timeout=20, interval=0.5)
        assert st.power_state == "On"
        assert st.addresses == ["192.0.2.11", "10.0.0.11"]
        assert await provider.addresses(ref) == ["192.0.2.11", "10.0.0.11"]

        # Deprovision: power off first (applied later), then eject; repeat until done.
        assert await provider.delete(ref) is False
        await eventually(lambda: provider.delete(ref), timeout=20, interval=0.5, what="deprovision")
        raw.refresh()
        cd.refresh()
        assert raw.power_state == sushy.POWER_STATE_OFF
        assert not cd.inserted
        assert (await provider.status(ref)).phase == "Stopped"
        assert await provider.delete(ref) is True  # safe to repeat
    finally:
        await provider.close()


async def test_host_not_claimed_by_machine(redfish: SushyEmulator) -> None:
    bmh = host(redfish.system_address(fake_system(2)["uuid"]), consumer="someone-else")
    provider = BareMetalProvider(bmh)
    assert await provider.find(request()) is None
    with pytest.raises(NoCapacityError, match="not claimed"):
        await provider.create(request())


async def test_missing_image_is_invalid_spec(
    redfish: SushyEmulator, image_server: ImageServer
) -> None:
    bmh = host(redfish.system_address(fake_system(3)["uuid"]))
    provider = BareMetalProvider(bmh, image_base_url=image_server.url)
    with pytest.raises(InvalidSpecError) as err:
        await provider.create(request(image="no-such-image"))
    assert err.value.code == 400 and err.value.reason == "InvalidSpec"
    assert not err.value.transient


async def test_unknown_system_is_not_found(redfish: SushyEmulator) -> None:
    bmh = host(redfish.system_address("00000000-dead-beef-0000-000000000000"))
    with pytest.raises(NotFoundError) as err:
        await BareMetalProvider(bmh).inspect_host()
    assert err.value.code == 404


async def test_bad_credentials_never_leak(tmp_path: pathlib.Path) -> None:
    system = fake_system(9)
    emu = SushyEmulator(tmp_path / "authed", [system], users={"admin": "right-password"})
    emu.start()
    try:
        good = BareMetalProvider(
            host(emu.system_address(system["uuid"]), password="right-password")
        )
        assert (await good.inspect_host()).system_uuid == system["uuid"]

        bad = BareMetalProvider(
            host(emu.system_address(system["uuid"]), password="wrong-hunter2")
        )
        with pytest.raises(CredentialsError) as err:
            await bad.inspect_host()
        assert err.value.code == 401 and not err.value.transient
        assert err.value.reason == "InvalidCredentials"
        assert "hunter2" not in str(err.value) and "hunter2" not in repr(err.value)
    finally:
        emu.stop()


async def test_unreachable_bmc_is_unavailable() -> None:
    from tests.providers.peers import free_port

    bmh = host(f"redfish+http://127.0.0.1:{free_port()}/redfish/v1/Systems/x")
    with pytest.raises(ProviderUnavailable) as err:
        await BareMetalProvider(bmh, timeout=2).power_state()
    assert err.value.transient


async def test_silent_bmc_times_out(silent_port: int) -> None:
    bmh = host(f"redfish+http://127.0.0.1:{silent_port}/redfish/v1/Systems/x")
    with pytest.raises(ProviderTimeout) as err:
        await BareMetalProvider(bmh, timeout=0.5).power_state()
    assert err.value.transient and err.value.reason == "ProviderTimeout"
