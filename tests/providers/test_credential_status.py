"""A credential says whether its cloud accepts it: ``Valid``/``Ready`` on the object, from
a real login (the fake Keystone at the HTTP boundary; the govmomi simulator for vCenter),
reasons a user can act on, no secret in status, and a password rotated at the cloud
noticed at the next recheck."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from services.providers.credential_status import VALID, CredentialReconciler
from services.providers.openstack import OpenStackProvider
from services.providers.steps import Backoff
from services.providers.vsphere import VsphereProvider
from shared.models import OpenStackCredential, Resource, VsphereCredential, convert
from shared.runtime import Controller
from shared.runtime import conditions as cond
from tests.fakes.openstack import FakeOpenStack
from tests.harness import Harness
from tests.providers.peers import Vcsim
from tests.providers.vcenter import REGION, credential
from tests.waiting import eventually

PASSWORD = "os-Pa55word"


@pytest.fixture
def cloud() -> Iterator[FakeOpenStack]:
    fake = FakeOpenStack().start()
    fake.add_user("demo", PASSWORD, "demo-project")
    yield fake
    fake.stop()
    assert fake.unhandled == []


def os_cred(auth_url: str, password: str, *, name: str = "demo-cloud",
            region: str = REGION) -> OpenStackCredential:
    return convert(OpenStackCredential, {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"region": region, "auth": {"authUrl": auth_url, "username": "demo",
                                            "password": password,
                                            "projectName": "demo-project"}}})


@pytest.fixture
async def openstack_checks(h: Harness) -> AsyncIterator[Controller]:
    ctl = Controller(
        name="test-openstack-credential", kind=OpenStackCredential, store=h.store, bus=h.bus,
        region=REGION, record_events=False,
        reconciler=CredentialReconciler(
            h.store, OpenStackCredential, lambda c: OpenStackProvider(c, timeout=2),
            region=REGION, backoff=Backoff(initial=0.1, cap=0.5), recheck_valid=0.3,
            recheck_refused=0.3),
    )
    await ctl.start()
    yield ctl
    await ctl.stop()


def valid(obj: Resource) -> tuple[str, str, str] | None:
    c = cond.get(obj.status, VALID)  # type: ignore[attr-defined]
    return (c.status, c.reason, c.severity) if c is not None else None


def message(obj: Resource, type_: str) -> str:
    c = cond.get(obj.status, type_)  # type: ignore[attr-defined]
    assert c is not None, f"no {type_} condition"
    return c.message


async def reaches(h: Harness, kind: type[Resource], name: str,
                  want: tuple[str, str, str]) -> Resource:
    async def check() -> Resource | None:
        obj = await h.store.get(kind, name, "default")
        return obj if valid(obj) == want else None

    return await eventually(check, timeout=20, what=f"{name} Valid={want}")


async def test_refused_then_fixed_then_rotated_at_the_cloud(
    h: Harness, cloud: FakeOpenStack, openstack_checks: Controller
) -> None:
    await h.store.create(os_cred(cloud.auth_url, "wrong-hunter2"))
    refused = await reaches(h, OpenStackCredential, "demo-cloud",
                            ("False", "InvalidCredentials", "Error"))
    assert not cond.is_true(refused.status, cond.READY)
    assert "Keystone rejected the credentials" in message(refused, cond.READY)
    assert "hunter2" not in repr(refused.status)
    assert refused.status.observed_generation == refused.metadata.generation

    fixed = await h.store.get(OpenStackCredential, "demo-cloud", "default")
    fixed.spec.auth.password = PASSWORD
    await h.store.update(fixed)
    ok = await reaches(h, OpenStackCredential, "demo-cloud", ("True", "Authenticated", ""))
    assert cond.is_true(ok.status, cond.READY)
    assert ok.status.observed_generation == ok.metadata.generation

    # Nobody touches the object: the cloud alone changes, and the recheck notices.
    cloud.set_password("demo", "rotated-Pa55")
    await reaches(h, OpenStackCredential, "demo-cloud", ("False", "InvalidCredentials", "Error"))


async def test_unreachable_keystone_is_a_warning_and_other_regions_are_left_alone(
    h: Harness, cloud: FakeOpenStack, openstack_checks: Controller
) -> None:
    await h.store.create(os_cred("http://127.0.0.1:9/v3", PASSWORD, name="nowhere"))
    await h.store.create(os_cred(cloud.auth_url, PASSWORD, name="elsewhere", region="other"))
    await h.store.create(os_cred(cloud.auth_url, PASSWORD, name="here"))
    gone = await reaches(h, OpenStackCredential, "nowhere",
                         ("False", "ProviderUnavailable", "Warning"))
    assert "endpoint unreachable" in message(gone, VALID)
    await reaches(h, OpenStackCredential, "here", ("True", "Authenticated", ""))
    other = await h.store.get(OpenStackCredential, "elsewhere", "default")
    assert other.status.conditions == [], "another region's provider checks it"


async def test_vcenter_login_decides(h: Harness, vcsim: Vcsim, admin: Any) -> None:
    ctl = Controller(
        name="test-vsphere-credential", kind=VsphereCredential, store=h.store, bus=h.bus,
        region=REGION, record_events=False,
        reconciler=CredentialReconciler(
            h.store, VsphereCredential, lambda c: VsphereProvider(c, timeout=5), region=REGION),
    )
    await ctl.start()
    try:
        await h.store.create(credential(vcsim.host, vcsim.port, vcsim.password, name="good"))
        await h.store.create(credential(vcsim.host, vcsim.port, "not-it-hunter2", name="bad"))
        await reaches(h, VsphereCredential, "good", ("True", "Authenticated", ""))
        bad = await reaches(h, VsphereCredential, "bad", ("False", "InvalidCredentials", "Error"))
        assert "vCenter refused the login" in message(bad, cond.READY)
        assert "hunter2" not in repr(bad.status)
    finally:
        await ctl.stop()
