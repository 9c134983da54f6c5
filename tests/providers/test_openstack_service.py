"""OpenStack Machine reconciling through credentials in the store and the fake cloud:
the Cluster's credential is used (and recorded, so deletion works once the Cluster is
gone), bad credentials become ``ProviderReady=False/InvalidCredentials`` with no secret
in status, and a fixed credential recovers the machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.providers.machines import MachineReconciler
from services.providers.openstack import OpenStackProvider
from services.providers.steps import PROVIDER_READY, Backoff
from services.providers.targets import TARGET_ANNOTATION, CredentialTargets
from shared.models import Cluster, Machine, OpenStackCredential, convert
from shared.runtime import Request, TransientError
from shared.runtime import conditions as cond
from shared.store import NotFound
from tests.fakes.openstack import FakeOpenStack
from tests.harness import Harness
from tests.waiting import eventually

REGION = "region-one"
PASSWORD = "os-Pa55word"


@pytest.fixture
def cloud() -> Iterator[FakeOpenStack]:
    fake = FakeOpenStack(build_seconds=0.2, delete_seconds=0.1).start()
    fake.add_user("demo", PASSWORD, "demo-project")
    fake.add_image("ubuntu-22.04")
    fake.add_flavor("m1.medium", vcpus=2, ram=4096)
    fake.add_network("private", cidr="10.0.0.0/24")
    fake.add_network("public", cidr="172.24.4.0/24", external=True)
    yield fake
    fake.stop()
    assert fake.unhandled == []


def cred(auth_url: str, password: str) -> OpenStackCredential:
    return convert(OpenStackCredential, {
        "metadata": {"name": "demo-cloud", "namespace": "default"},
        "spec": {"region": REGION, "auth": {"authUrl": auth_url, "username": "demo",
                                            "password": password,
                                            "projectName": "demo-project"}}})


async def test_credentials_from_store_errors_and_recovery(h: Harness, cloud: FakeOpenStack) -> None:
    await h.store.create(cred(cloud.auth_url, "wrong-hunter2"))
    await h.store.create(convert(Cluster, {
        "metadata": {"name": "os", "namespace": "default"},
        "spec": {"region": REGION, "provider": "openstack", "release": "mke-7-1-0",
                 "credential": "demo-cloud"}}))
    await h.store.create(convert(Machine, {
        "metadata": {"name": "w0", "namespace": "default"},
        "spec": {"cluster": "os", "region": REGION,
                 "openstack": {"flavor": "m1.medium", "image": "ubuntu-22.04",
                               "network": "private", "floatingNetwork": "public"}}}))
    targets = CredentialTargets(h.store, OpenStackCredential,
                                lambda c: OpenStackProvider(c, timeout=5), provider="openstack")
    rec = MachineReconciler(h.store, "openstack", targets, region=REGION, poll_interval=0.1,
                            backoff=Backoff(initial=0.1, cap=0.5))
    req = Request("w0", "default")

    with pytest.raises(TransientError):
        await rec.reconcile(req)
    m = await h.store.get(Machine, "w0", "default")
    c = cond.get(m.status, PROVIDER_READY)
    assert c is not None and (c.status, c.reason) == ("False", "InvalidCredentials")
    assert "hunter2" not in repr(m.status) and "hunter2" not in repr(m.metadata)
    assert m.metadata.annotations[TARGET_ANNOTATION] == "demo-cloud"
    assert cloud.servers == {}

    fixed = await h.store.get(OpenStackCredential, "demo-cloud", "default")
    fixed.spec.auth.password = PASSWORD
    await h.store.update(fixed)

    async def running() -> Machine | None:
        try:
            await rec.reconcile(req)
        except TransientError:
            pass
        got = await h.store.get(Machine, "w0", "default")
        return got if got.status.phase == "Running" else None

    m = await eventually(running, timeout=15, interval=0.1, what="machine running")
    assert len(cloud.servers) == 1 and len(m.status.addresses) == 2
    assert cond.get(m.status, PROVIDER_READY).reason == "NodeRunning"  # type: ignore[union-attr]

    # The Cluster goes first (cascade); the recorded credential still reaches the cloud.
    await h.store.delete(Cluster, "os", "default")
    await h.store.delete(Machine, "w0", "default")

    async def gone() -> bool:
        try:
            await rec.reconcile(req)
        except (TransientError, NotFound):
            pass
        try:
            await h.store.get(Machine, "w0", "default")
        except NotFound:
            return True
        return False

    await eventually(gone, timeout=15, interval=0.1, what="machine deleted")
    assert cloud.servers == {} and cloud.floating_ips == {}
    await targets.close()
