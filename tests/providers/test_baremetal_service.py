"""Bare-metal service on the real store + bus and the sushy-tools emulator: host inventory
(inspection and power state into BareMetalHost status), host selection by labels, claim,
provisioning over Redfish, a power cycle a health check asks for, and release on deletion.
"""

from __future__ import annotations

import pytest

from services.providers.baremetal.adapter import ADDRESSES_ANNOTATION, BareMetalProvider
from services.providers.baremetal.hosts import HostTargets
from services.providers.baremetal.inventory import BMC_REACHABLE, HostReconciler
from services.providers.machines import MachineReconciler
from services.providers.steps import PROVIDER_READY, Backoff
from shared.models import (
    MACHINE_LABEL,
    REBOOT_DONE_ANNOTATION,
    REBOOT_GRACEFUL_ANNOTATION,
    REBOOT_REQUEST_ANNOTATION,
    BareMetalHost,
    Cluster,
    Machine,
    convert,
)
from shared.runtime import Controller, Request, TransientError
from shared.runtime import conditions as cond
from shared.store import NotFound
from tests.harness import Harness
from tests.providers.peers import ImageServer, SushyEmulator, fake_system
from tests.waiting import eventually

REGION = "region-one"


def bmh(
    emu: SushyEmulator, index: int, *, labels: dict[str, str], password: str = ""
) -> BareMetalHost:
    system_ = fake_system(index)
    return convert(BareMetalHost, {
        "metadata": {"name": f"host-{index}", "namespace": "default", "labels": labels,
                     "annotations": {ADDRESSES_ANNOTATION: f"192.0.2.{10 + index}"}},
        "spec": {"region": REGION, "bmc": {"address": emu.system_address(system_["uuid"]),
                                           "username": "admin", "password": password},
                 "bootMacAddress": system_["nics"][0]["mac"]},
    })


async def test_inventory_claim_provision_release(
    h: Harness, redfish: SushyEmulator, image_server: ImageServer
) -> None:
    await h.store.create(bmh(redfish, 5, labels={"rack": "a"}))
    await h.store.create(bmh(redfish, 6, labels={"rack": "b", "gpu": "yes"}))
    await h.store.create(convert(Cluster, {
        "metadata": {"name": "bm", "namespace": "default"},
        "spec": {"region": REGION, "provider": "baremetal", "release": "mke-7-1-0"}}))
    await h.store.create(convert(Machine, {
        "metadata": {"name": "gpu-0", "namespace": "default"},
        "spec": {"cluster": "bm", "region": REGION,
                 "baremetal": {"hostSelector": {"gpu": "yes"}, "image": "ubuntu-22.04"}}}))

    def factory(host: BareMetalHost) -> BareMetalProvider:
        return BareMetalProvider(host, image_base_url=image_server.url, timeout=10)

    hosts = Controller(name="bm-host", kind=BareMetalHost, store=h.store, bus=h.bus,
                       region=REGION, resync_period=None,
                       reconciler=HostReconciler(h.store, region=REGION, refresh_interval=0.5,
                                                 factory=factory))
    machines = Controller(name="bm-machine", kind=Machine, store=h.store, bus=h.bus,
                          region=REGION, resync_period=None,
                          reconciler=MachineReconciler(
                              h.store, "baremetal", HostTargets(h.store, factory=factory),
                              region=REGION, poll_interval=0.5,
                              backoff=Backoff(initial=0.2, cap=1.0)))
    await hosts.start()
    await machines.start()
    try:
        async def inspected() -> BareMetalHost | None:
            host = await h.store.get(BareMetalHost, "host-5", "default")
            return host if cond.is_true(host.status, "Inspected") else None

        host5 = await eventually(inspected, timeout=20, what="host-5 inspected")
        assert host5.status.hardware is not None
        assert host5.status.hardware.system_uuid == fake_system(5)["uuid"]
        assert host5.status.hardware.nics == [fake_system(5)["nics"][0]["mac"]]
        assert host5.status.provisioning_state == "available"

        async def running() -> Machine | None:
            m = await h.store.get(Machine, "gpu-0", "default")
            return m if m.status.phase == "Running" else None

        m = await eventually(running, timeout=40, interval=0.3, what="machine running")
        assert m.status.provider_id == "baremetal:///default/host-6"
        assert m.status.addresses == ["192.0.2.16"]
        host6 = await h.store.get(BareMetalHost, "host-6", "default")
        assert host6.spec.consumer == m.metadata.uid
        assert host6.metadata.labels[MACHINE_LABEL] == "gpu-0"  # for people: who holds it
        assert (await h.store.get(BareMetalHost, "host-5", "default")).spec.consumer == ""

        async def host6_on() -> bool:
            h6 = await h.store.get(BareMetalHost, "host-6", "default")
            return h6.status.power_state == "on" and h6.status.provisioning_state == "provisioned"

        await eventually(host6_on, timeout=10, what="host-6 status provisioned/on")

        # A health check asks for a reboot: the BMC powers the host off, then on again.
        m = await h.store.get(Machine, "gpu-0", "default")
        m.metadata.annotations[REBOOT_REQUEST_ANNOTATION] = "r1"
        await h.store.update(m)

        async def rebooted() -> Machine | None:
            m = await h.store.get(Machine, "gpu-0", "default")
            done = m.metadata.annotations.get(REBOOT_DONE_ANNOTATION) == "r1"
            # The answer is a metadata write a moment before the status write of the step.
            step = next((s for s in m.status.provider_steps if s.name == "Reboot"), None)
            return m if done and m.status.phase == "Running" and step is not None and (
                step.state == "Done") else None

        m = await eventually(rebooted, timeout=40, interval=0.3, what="host-6 rebooted")
        step = next(s for s in m.status.provider_steps if s.name == "Reboot")
        assert step.state == "Done" and step.message.startswith("node host-6")
        assert cond.is_true(m.status, PROVIDER_READY)
        await eventually(host6_on, timeout=10, what="host-6 on again")

        # A graceful reboot asks the BMC for a GracefulShutdown (the OS shuts down), then on.
        m = await h.store.get(Machine, "gpu-0", "default")
        m.metadata.annotations[REBOOT_REQUEST_ANNOTATION] = "g2"
        m.metadata.annotations[REBOOT_GRACEFUL_ANNOTATION] = "g2"
        await h.store.update(m)

        async def shutting_down() -> bool:
            m = await h.store.get(Machine, "gpu-0", "default")
            step = next((s for s in m.status.provider_steps if s.name == "Reboot"), None)
            return step is not None and step.message.startswith("shutting node host-6 down")

        await eventually(shutting_down, timeout=20, interval=0.2, what="host-6 shutting down")

        async def rebooted_gracefully() -> Machine | None:
            m = await h.store.get(Machine, "gpu-0", "default")
            step = next((s for s in m.status.provider_steps if s.name == "Reboot"), None)
            done = m.metadata.annotations.get(REBOOT_DONE_ANNOTATION) == "g2"
            return m if done and step is not None and step.state == "Done" else None

        m = await eventually(rebooted_gracefully, timeout=40, interval=0.3,
                             what="host-6 rebooted gracefully")
        assert REBOOT_GRACEFUL_ANNOTATION not in m.metadata.annotations
        await eventually(host6_on, timeout=10, what="host-6 on after the graceful reboot")

        await h.store.delete(Machine, "gpu-0", "default")

        async def machine_gone() -> bool:
            try:
                await h.store.get(Machine, "gpu-0", "default")
            except NotFound:
                return True
            return False

        await eventually(machine_gone, timeout=40, interval=0.3, what="machine deleted")
        host6 = await h.store.get(BareMetalHost, "host-6", "default")
        assert host6.spec.consumer == "" and not host6.spec.online
        assert MACHINE_LABEL not in host6.metadata.labels
    finally:
        await machines.stop()
        await hosts.stop()


async def test_no_matching_host_is_no_capacity(h: Harness, redfish: SushyEmulator) -> None:
    await h.store.create(bmh(redfish, 7, labels={"rack": "a"}))
    await h.store.create(convert(Cluster, {
        "metadata": {"name": "bm", "namespace": "default"},
        "spec": {"region": REGION, "provider": "baremetal", "release": "mke-7-1-0"}}))
    await h.store.create(convert(Machine, {
        "metadata": {"name": "w", "namespace": "default"},
        "spec": {"cluster": "bm", "region": REGION,
                 "baremetal": {"hostSelector": {"rack": "z"}}}}))
    rec = MachineReconciler(h.store, "baremetal", HostTargets(h.store), region=REGION)
    with pytest.raises(TransientError):
        await rec.reconcile(Request("w", "default"))
    m = await h.store.get(Machine, "w", "default")
    c = cond.get(m.status, PROVIDER_READY)
    assert c is not None and c.reason == "NoCapacity" and "rack" in c.message


async def test_bmc_credentials_error_on_host(h: Harness, tmp_path) -> None:  # noqa: ANN001
    emu = SushyEmulator(tmp_path / "authed", [fake_system(9)], users={"admin": "good-pass"})
    emu.start()
    try:
        await h.store.create(bmh(emu, 9, labels={}, password="bad-hunter2"))
        rec = HostReconciler(h.store, region=REGION)
        with pytest.raises(TransientError):
            await rec.reconcile(Request("host-9", "default"))
        host = await h.store.get(BareMetalHost, "host-9", "default")
        c = cond.get(host.status, BMC_REACHABLE)
        assert c is not None and c.reason == "InvalidCredentials" and c.severity == "Error"
        assert "hunter2" not in str(host.status)
        assert host.status.provisioning_state == "registration error"
    finally:
        emu.stop()


def power_watching_inventory(h: Harness, name: str) -> Controller:
    """The inventory with a slow refresh (60 s) and a fast power poll (0.3 s): what a test
    sees within seconds comes from the power poll."""
    return Controller(name=name, kind=BareMetalHost, store=h.store, bus=h.bus, region=REGION,
                      resync_period=None,
                      reconciler=HostReconciler(h.store, region=REGION, refresh_interval=60,
                                                power_poll_interval=0.3))


async def test_a_free_host_that_comes_on_late_is_powered_off(
    h: Harness, redfish: SushyEmulator
) -> None:
    """BMCs apply power changes late: a power-on asked for just before a deprovision can
    land after the host was released. The inventory turns a host that is not online off."""
    await h.store.create(bmh(redfish, 8, labels={}))
    host = await h.store.get(BareMetalHost, "host-8", "default")
    assert not host.spec.online
    bmc = BareMetalProvider(host, timeout=10)
    try:
        await bmc.power(bmc._ref("nobody"), on=True)  # the late power-on

        async def bmc_on() -> bool:
            return await bmc.power_state() == "On"

        await eventually(bmc_on, timeout=20, interval=0.3, what="the BMC applies power on")
        hosts = power_watching_inventory(h, "bm-host-off")
        await hosts.start()
        try:
            async def off_everywhere() -> bool:
                stored = await h.store.get(BareMetalHost, "host-8", "default")
                return stored.status.power_state == "off" and not await bmc_on()

            await eventually(off_everywhere, timeout=30, interval=0.3,
                             what="host-8 powered off by the inventory")
        finally:
            await hosts.stop()
    finally:
        await bmc.close()


async def test_a_claimed_host_shows_its_power_on_soon_after_it_comes_on(
    h: Harness, redfish: SushyEmulator
) -> None:
    """A claimed host is powered on by its Machine's provisioning, not by the inventory:
    while its power differs from ``online`` the inventory polls it at the fast interval, so
    the host of a running node does not show "off" until the next slow refresh (60 s here)."""
    claimed = bmh(redfish, 3, labels={})
    claimed.spec.online, claimed.spec.consumer = True, "some-machine-uid"
    await h.store.create(claimed)
    bmc = BareMetalProvider(claimed, timeout=10)
    hosts = power_watching_inventory(h, "bm-host-on")
    await hosts.start()
    try:
        async def power(state: str) -> bool:
            stored = await h.store.get(BareMetalHost, "host-3", "default")
            return stored.status.power_state == state

        await eventually(lambda: power("off"), timeout=20, what="host-3 first seen off")
        await bmc.power(bmc._ref("some-machine-uid"), on=True)  # the Machine's PowerOn step
        await eventually(lambda: power("on"), timeout=20, interval=0.3,
                         what="host-3 shown on well before the 60 s refresh")
    finally:
        await hosts.stop()
        await bmc.close()


async def test_inventory_keeps_one_bmc_client_per_host(
    h: Harness, redfish: SushyEmulator
) -> None:
    """Refreshes reuse the host's Redfish client; new BMC details get a new one."""
    await h.store.create(bmh(redfish, 4, labels={}))
    made: list[BareMetalProvider] = []

    def factory(host: BareMetalHost) -> BareMetalProvider:
        made.append(BareMetalProvider(host, timeout=10))
        return made[-1]

    rec = HostReconciler(h.store, region=REGION, factory=factory)
    try:
        for _ in range(3):
            await rec.reconcile(Request("host-4", "default"))
        assert len(made) == 1
        host = await h.store.get(BareMetalHost, "host-4", "default")
        assert host.status.power_state in ("on", "off") and cond.is_true(host.status,
                                                                          BMC_REACHABLE)
        host.spec.bmc.username = "someone-else"
        await h.store.update(host)
        await rec.reconcile(Request("host-4", "default"))
        assert len(made) == 2 and made[0].bmc._client is None  # the old one was closed
        await h.store.delete(BareMetalHost, "host-4", "default")
        with pytest.raises(NotFound):
            await rec.reconcile(Request("host-4", "default"))
        assert made[1].bmc._client is None
    finally:
        await rec.close()
