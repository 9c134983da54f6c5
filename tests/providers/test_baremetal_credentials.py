"""BareMetalHosts that name a BareMetalHostCredential (``spec.bmc.credentialsName``), against
the sushy-tools emulator with HTTP basic auth: inspection with the named credential, a
missing one (``CredentialsNotFound``) and a wrong one (``InvalidCredentials``) recovering as
soon as the credential is created or fixed (the credential's event re-triggers the host),
rotation reaching the cached client, and no password in status, bus messages or logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from services.providers.baremetal.adapter import BareMetalProvider
from services.providers.baremetal.credentials import CredentialsNotFoundError
from services.providers.baremetal.hosts import HostTargets
from services.providers.baremetal.inventory import BMC_REACHABLE, INSPECTED, HostReconciler
from services.providers.steps import Backoff
from shared.bus import ChangeEvent
from shared.models import BareMetalHost, BareMetalHostCredential, Machine, convert
from shared.runtime import Controller, Request, TransientError
from shared.runtime import conditions as cond
from shared.store import NotFound
from tests.harness import Harness
from tests.providers.leaks import LeakWatch, forms
from tests.providers.peers import SushyEmulator, fake_system
from tests.waiting import eventually

REGION = "region-one"
GOOD = "bmc-Right-pa55word"
WRONG = "bmc-Wrong-hunter2"


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SushyEmulator]:
    emu = SushyEmulator(tmp_path_factory.mktemp("sushy-auth"),
                        [fake_system(i) for i in (11, 12, 13)], users={"admin": GOOD})
    emu.start()
    yield emu
    emu.stop()


def credential(password: str, name: str = "rack-a") -> BareMetalHostCredential:
    return convert(BareMetalHostCredential, {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"region": REGION, "username": "admin", "password": password}})


def host(emu: SushyEmulator, index: int, credentials_name: str = "rack-a") -> BareMetalHost:
    sys_ = fake_system(index)
    return convert(BareMetalHost, {
        "metadata": {"name": f"host-{index}", "namespace": "default"},
        "spec": {"region": REGION, "bootMacAddress": sys_["nics"][0]["mac"],
                 "bmc": {"address": emu.system_address(sys_["uuid"]),
                         "credentialsName": credentials_name}}})


async def set_password(h: Harness, password: str, name: str = "rack-a") -> None:
    cred = await h.store.get(BareMetalHostCredential, name, "default")
    cred.spec.password = password
    await h.store.update(cred)


async def test_named_credential_missing_wrong_fixed_and_no_leaks(
    h: Harness, authed: SushyEmulator, nc: NATS, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Retries are 30 s apart here: only the credential's event can bring each recovery
    within the waits below."""
    watch = await LeakWatch(nc, prefix, caplog).start()
    await h.store.create(host(authed, 11))
    rec = HostReconciler(h.store, region=REGION, refresh_interval=60,
                         backoff=Backoff(initial=30, cap=60),
                         factory=lambda hst: BareMetalProvider(hst, timeout=10))
    hosts = Controller(name="bm-host-cred", kind=BareMetalHost, store=h.store, bus=h.bus,
                       region=REGION, resync_period=None, reconciler=rec,
                       watches=[rec.credential_watch()])

    async def bmc(reason: str) -> Any:
        stored = await h.store.get(BareMetalHost, "host-11", "default")
        c = cond.get(stored.status, BMC_REACHABLE)
        return c if c is not None and c.reason == reason else None

    await hosts.start()
    try:
        c = await eventually(lambda: bmc("CredentialsNotFound"), timeout=15,
                             what="CredentialsNotFound")
        assert c.status == "False" and "default/rack-a" in c.message
        assert "credentialsName" in c.message

        await h.store.create(credential(WRONG))
        c = await eventually(lambda: bmc("InvalidCredentials"), timeout=15,
                             what="InvalidCredentials after the credential appears")
        assert c.status == "False"

        await set_password(h, GOOD)

        async def available() -> BareMetalHost | None:
            stored = await h.store.get(BareMetalHost, "host-11", "default")
            ok = cond.is_true(stored.status, BMC_REACHABLE) and cond.is_true(
                stored.status, INSPECTED)
            return stored if ok and stored.status.provisioning_state == "available" else None

        stored = await eventually(available, timeout=20, interval=0.2,
                                  what="host inspected and available after the fix")
        assert stored.status.hardware is not None
        assert stored.status.hardware.system_uuid == fake_system(11)["uuid"]
        assert stored.spec.bmc.password == "" and stored.spec.bmc.username == ""
    finally:
        await hosts.stop()
        await rec.close()
        await watch.stop()
    watch.assert_clean([*forms(GOOD, "admin"), *forms(WRONG, "admin")], [stored])


async def test_rotation_reaches_the_cached_client(h: Harness, authed: SushyEmulator) -> None:
    """The per-host client is keyed on the credential's resourceVersion: a rotated (here:
    broken) password is used on the very next pass, not masked by the cached session."""
    await h.store.create(credential(GOOD))
    await h.store.create(host(authed, 12))
    made: list[BareMetalProvider] = []

    def factory(hst: BareMetalHost) -> BareMetalProvider:
        made.append(BareMetalProvider(hst, timeout=10))
        return made[-1]

    rec = HostReconciler(h.store, region=REGION, factory=factory)
    req = Request("host-12", "default")
    try:
        await rec.reconcile(req)
        await rec.reconcile(req)
        assert len(made) == 1 and made[0].bmc.details.password == GOOD
        stored = await h.store.get(BareMetalHost, "host-12", "default")
        assert cond.is_true(stored.status, BMC_REACHABLE)
        assert cond.is_true(stored.status, cond.READY), "reachable and inspected: Ready"

        await set_password(h, WRONG)
        with pytest.raises(TransientError):
            await rec.reconcile(req)
        assert len(made) == 2 and made[0].bmc._client is None  # the old one was closed
        stored = await h.store.get(BareMetalHost, "host-12", "default")
        c = cond.get(stored.status, BMC_REACHABLE)
        assert c is not None and c.reason == "InvalidCredentials"
        ready = cond.get(stored.status, cond.READY)
        assert ready is not None and (ready.status, ready.reason) == ("False", c.reason)

        await set_password(h, GOOD)
        await rec.reconcile(req)
        stored = await h.store.get(BareMetalHost, "host-12", "default")
        assert cond.is_true(stored.status, BMC_REACHABLE)
        assert cond.is_true(stored.status, cond.READY)
        assert rec.hosts_using(_event("rack-a")) == [req]
        await h.store.delete(BareMetalHost, "host-12", "default")
        with pytest.raises(NotFound):
            await rec.reconcile(req)
        assert rec.hosts_using(_event("rack-a")) == []
    finally:
        await rec.close()


async def test_machine_targets_use_the_named_credential(
    h: Harness, authed: SushyEmulator
) -> None:
    """The Machine side (HostTargets) resolves the credential too, or says it is missing."""
    await h.store.create(host(authed, 13, credentials_name="rack-b"))
    machine = convert(Machine, {
        "metadata": {"name": "w", "namespace": "default", "uid": "m-uid-1"},
        "spec": {"cluster": "c", "region": REGION}})
    targets = HostTargets(h.store, factory=lambda hst: BareMetalProvider(hst, timeout=10))
    with pytest.raises(CredentialsNotFoundError, match="default/rack-b"):
        await targets.provider_for(machine, None, claim=True)
    await h.store.create(credential(GOOD, name="rack-b"))
    provider = await targets.provider_for(machine, None, claim=False)  # claimed above
    assert provider is not None
    try:
        assert await provider.power_state() in ("On", "Off")  # authenticated with GOOD
        claimed = await h.store.get(BareMetalHost, "host-13", "default")
        assert claimed.spec.consumer == "m-uid-1" and claimed.spec.bmc.password == ""
    finally:
        await provider.close()


def _event(name: str) -> ChangeEvent:
    return ChangeEvent(id="e", type="MODIFIED", kind="BareMetalHostCredential", name=name,
                       namespace="default", uid="u", resource_version="1", region=REGION,
                       time="")
