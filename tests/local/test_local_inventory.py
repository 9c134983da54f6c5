"""The local region's bare-metal inventory as ``ccloud up`` seeds it: one
BareMetalHostCredential per region that every host names, kept across a second ``up``,
and hosts the bare-metal inventory inspects through it on the Redfish emulator."""

from __future__ import annotations

import argparse
from pathlib import Path

from services.local.cli import bare_metal_hosts, bmc_credential_name, seed
from services.local.redfish import fake_system
from services.providers.baremetal.adapter import BareMetalProvider
from services.providers.baremetal.inventory import BMC_REACHABLE, HostReconciler
from shared.config import Settings
from shared.models import BareMetalHost, BareMetalHostCredential
from shared.natsserver import NatsServer
from shared.runtime import Request
from shared.runtime import conditions as cond
from tests.harness import Harness
from tests.providers.peers import SushyEmulator


async def test_hosts_name_the_region_credential(
    h: Harness, nats_server: NatsServer, prefix: str, tmp_path: Path
) -> None:
    emu = SushyEmulator(tmp_path / "sushy", [fake_system(i) for i in range(2)]).start()
    try:
        args = argparse.Namespace(hosts=2, region="local", redfish_port=emu.port)
        settings = Settings(nats_url=nats_server.url, prefix=prefix)
        await seed(settings, bare_metal_hosts(args))
        cred = await h.store.get(BareMetalHostCredential, bmc_credential_name("local"),
                                 "default")
        assert cred.spec.region == "local" and cred.spec.username == "admin"
        assert len(cred.spec.password) >= 16
        hosts = await h.store.list_all(BareMetalHost, "default")
        assert sorted(x.metadata.name for x in hosts) == ["bm-0", "bm-1"]
        for host in hosts:
            assert host.spec.bmc.credentials_name == cred.metadata.name
            assert (host.spec.bmc.username, host.spec.bmc.password) == ("", "")

        await seed(settings, bare_metal_hosts(args))  # a second `up` keeps what is there
        again = await h.store.get(BareMetalHostCredential, cred.metadata.name, "default")
        assert again.spec.password == cred.spec.password
        assert again.metadata.resource_version == cred.metadata.resource_version

        rec = HostReconciler(h.store, region="local",
                             factory=lambda x: BareMetalProvider(x, timeout=10))
        try:
            await rec.reconcile(Request("bm-0", "default"))
        finally:
            await rec.close()
        host = await h.store.get(BareMetalHost, "bm-0", "default")
        assert cond.is_true(host.status, BMC_REACHABLE)
        assert host.status.provisioning_state == "available"
    finally:
        emu.stop()
