"""Bare-metal nodes get their LCM agent's bootstrap data on a config drive.

The provider burns the node's cloud-init into a NoCloud ISO, serves it, and inserts it in
the BMC's removable virtual media beside the OS image; the real sushy-tools emulator
fetches it from the provider's server when it is inserted (as a BMC does), so an
unreachable or missing drive fails the insert.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import sushy
import yaml

from services.lcm.tokens import machine_token
from services.local.nodes import Boot, DriveError
from services.providers.agent_bootstrap import ENV_FILE, AgentBootstrap
from services.providers.baremetal import BareMetalProvider, configdrive
from services.providers.baremetal.media import (
    ConfigDrives,
    MediaServer,
    MediaSettings,
)
from services.providers.contract import NodeRequest
from services.providers.errors import InvalidSpecError
from shared.models import BareMetalMachineSpec, Machine, convert
from shared.natsserver import free_port
from tests.providers.peers import ImageServer, SushyEmulator, fake_system
from tests.providers.test_baremetal_adapter import host, redfish_system
from tests.waiting import eventually

SECRET = b"agent-secret-for-tests"
UID = "6f1c2d3e-0000-4000-8000-00000000abcd"  # the uid test_baremetal_adapter.host claims for


def machine(uid: str = UID, name: str = "worker-0") -> Machine:
    return convert(Machine, {
        "metadata": {"name": name, "namespace": "default", "uid": uid},
        "spec": {"cluster": "demo", "region": "region-one", "baremetal": {}}})


def request(m: Machine, user_data: str) -> NodeRequest:
    return NodeRequest(machine_uid=m.metadata.uid or "", machine_name=m.metadata.name,
                       namespace="default", cluster="demo", region="region-one",
                       spec=BareMetalMachineSpec(), user_data=user_data)


@pytest.fixture
async def media(tmp_path: Path) -> AsyncIterator[MediaServer]:
    port = free_port()
    server = MediaServer(ConfigDrives(tmp_path / "drives", f"http://127.0.0.1:{port}"),
                         host="127.0.0.1", port=port)
    await server.start()
    yield server
    await server.stop()


async def fetch(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.read()


def test_a_drive_is_what_cloud_init_looks_for(tmp_path: Path) -> None:
    iso = configdrive.build("#cloud-config\n{}\n", instance_id="uid-1", hostname="worker-0")
    files = configdrive.read(iso)
    assert files[configdrive.USER_DATA] == "#cloud-config\n{}\n"
    assert yaml.safe_load(files[configdrive.META_DATA]) == {
        "instance-id": "uid-1", "local-hostname": "worker-0"}
    if blkid := shutil.which("blkid") or shutil.which("/usr/sbin/blkid"):
        # NoCloud finds its drive by this label (cloud-init asks blkid for LABEL=cidata).
        (tmp_path / "cd.iso").write_bytes(iso)
        out = subprocess.run([blkid, "-o", "export", str(tmp_path / "cd.iso")],
                             capture_output=True, text=True, check=True).stdout
        assert "LABEL=cidata" in out.splitlines() and "TYPE=iso9660" in out.splitlines()
    with pytest.raises(configdrive.ConfigDriveError, match="not an ISO"):
        configdrive.read(b"not an iso" * 300)


async def test_provisioning_inserts_the_nodes_drive_and_deprovisioning_withdraws_it(
    redfish: SushyEmulator, image_server: ImageServer, media: MediaServer
) -> None:
    system = fake_system(2)
    m = machine()
    user_data = AgentBootstrap(endpoint="https://lcm.example:8430", secret=SECRET,
                               ca_pem="-----BEGIN CERTIFICATE-----\n").user_data(m)
    provider = BareMetalProvider(host(redfish.system_address(system["uuid"])),
                                 image_base_url=image_server.url, drives=media.drives,
                                 timeout=10)
    try:
        ref = await provider.create(request(m, user_data))
        raw = redfish_system(redfish, system["uuid"])
        by_id = {i: raw.virtual_media.get_member(i) for i in raw.virtual_media.members_identities}
        cd, stick = by_id["/redfish/v1/Systems/{}/VirtualMedia/Cd".format(system["uuid"])], \
            by_id["/redfish/v1/Systems/{}/VirtualMedia/Floppy".format(system["uuid"])]
        assert cd.inserted and cd.image == f"{image_server.url}/ubuntu-22.04.iso"
        assert stick.inserted and media.drives.owns(stick.image)
        assert raw.boot.target == sushy.BOOT_SOURCE_TARGET_CD  # the OS boots, the drive is data

        # What the node reads from it: its Machine, a token LCM accepts for it, the CA.
        status, iso = await fetch(stick.image)
        assert status == 200
        boot = Boot.from_drive(iso)
        assert boot.instance_id == UID and boot.hostname == "worker-0"
        assert boot.env["CCLOUD_LCM_AGENT_MACHINE"] == "default/worker-0"
        assert boot.env["CCLOUD_LCM_AGENT_ENDPOINT"] == "https://lcm.example:8430"
        assert boot.env["CCLOUD_LCM_AGENT_TOKEN"] == machine_token(SECRET, UID)
        assert boot.files["/etc/ccloud/lcm-ca.pem"].startswith("-----BEGIN CERTIFICATE")
        assert ENV_FILE in boot.files

        # At-least-once: a second create keeps the same drive (same URL, not re-inserted).
        url = stick.image
        await provider.create(request(m, user_data))
        stick.refresh()
        assert stick.image == url

        # Data that changed (another endpoint) is a new drive; the old one is withdrawn.
        changed = AgentBootstrap(endpoint="https://lcm2.example:8430", secret=SECRET
                                 ).user_data(m)
        await provider.create(request(m, changed))
        stick.refresh()
        assert stick.inserted and stick.image != url
        assert (await fetch(url))[0] == 404
        assert Boot.from_drive((await fetch(stick.image))[1]).env[
            "CCLOUD_LCM_AGENT_ENDPOINT"] == "https://lcm2.example:8430"

        # Deprovision ejects both and stops serving the drive.
        url = stick.image
        await eventually(lambda: provider.delete(ref), timeout=20, interval=0.5,
                         what="deprovision")
        cd.refresh()
        stick.refresh()
        assert not cd.inserted and not stick.inserted
        assert (await fetch(url))[0] == 404
        assert not list(media.drives.root.glob("*.iso"))
    finally:
        await provider.close()


async def test_a_drive_the_bmc_cannot_fetch_fails_the_insert_clearly(
    redfish: SushyEmulator, image_server: ImageServer, tmp_path: Path
) -> None:
    """Drives published under a URL nobody serves: the BMC's fetch fails, the error says
    so; a provider told no URL at all says which setting is missing."""
    system = fake_system(3)
    m = machine()
    user_data = AgentBootstrap(endpoint="http://lcm:8430", secret=SECRET).user_data(m)
    bmh = host(redfish.system_address(system["uuid"]))
    silent = ConfigDrives(tmp_path / "d", "http://127.0.0.1:9")  # discard port: refused
    provider = BareMetalProvider(bmh, image_base_url=image_server.url, drives=silent,
                                 timeout=10)
    try:
        with pytest.raises(Exception, match="insert media") as e:
            await provider.create(request(m, user_data))
        assert "Traceback" not in str(e.value)
    finally:
        await provider.close()
    unset = BareMetalProvider(bmh, image_base_url=image_server.url,
                              drives=ConfigDrives(tmp_path / "d", ""), timeout=10)
    try:
        with pytest.raises(InvalidSpecError, match="CCLOUD_BAREMETAL_MEDIA_URL"):
            await unset.create(request(m, user_data))
    finally:
        await unset.close()


async def test_the_media_server_serves_published_drives_only(media: MediaServer) -> None:
    url = media.drives.publish("#cloud-config\n{}\n", instance_id="u", hostname="h")
    assert media.drives.path(url.rsplit("/", 1)[1]).stat().st_mode & 0o777 == 0o600
    status, body = await fetch(url)
    assert status == 200 and configdrive.read(body)["user-data"] == "#cloud-config\n{}\n"
    base = media.drives.base_url
    for name in ("0" * 64 + ".iso", "..%2F..%2Fetc%2Fpasswd", "x.iso"):
        assert (await fetch(f"{base}/{name}"))[0] == 404, name
    media.drives.withdraw("http://elsewhere/configdrive/" + url.rsplit("/", 1)[1])
    assert (await fetch(url))[0] == 200, "a URL that is not ours withdraws nothing"


def test_media_settings() -> None:
    assert MediaSettings.from_env({}).base_url == "http://127.0.0.1:8436"
    wildcard = MediaSettings.from_env({"CCLOUD_BAREMETAL_MEDIA_HOST": "0.0.0.0"})
    assert wildcard.base_url == "", "a wildcard names no address a BMC can use"
    given = MediaSettings.from_env({"CCLOUD_BAREMETAL_MEDIA_HOST": "0.0.0.0",
                                    "CCLOUD_BAREMETAL_MEDIA_URL": "http://10.0.0.2:30436"})
    assert (given.host, given.port, given.base_url) == ("0.0.0.0", 8436, "http://10.0.0.2:30436")
    with pytest.raises(SystemExit, match="not a port"):
        MediaSettings.from_env({"CCLOUD_BAREMETAL_MEDIA_PORT": "http"})
    with pytest.raises(SystemExit, match="not an http"):
        MediaSettings.from_env({"CCLOUD_BAREMETAL_MEDIA_URL": "10.0.0.2"})


def test_a_node_boots_its_agent_only_from_a_whole_drive() -> None:
    m = machine()
    whole = configdrive.build(AgentBootstrap(endpoint="http://lcm:8430", secret=SECRET)
                              .user_data(m), instance_id=UID, hostname="worker-0")
    assert Boot.from_drive(whole).env["CCLOUD_LCM_AGENT_MACHINE"] == "default/worker-0"
    no_token = configdrive.build("#cloud-config\nwrite_files: []\n", instance_id=UID,
                                 hostname="worker-0")
    with pytest.raises(DriveError, match="CCLOUD_LCM_AGENT_ENDPOINT"):
        Boot.from_drive(no_token)
    with pytest.raises(DriveError, match="not an ISO"):
        Boot.from_drive(b"\0" * 4096)
