"""OpenStack adapter driven through the real openstacksdk against the HTTP fake cloud."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.providers.contract import NodeRequest, wait_for
from services.providers.errors import (
    CredentialsError,
    InvalidSpecError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    QuotaError,
)
from services.providers.openstack import OpenStackProvider
from shared.models import OpenStackCredential, OpenStackMachineSpec, convert
from tests.fakes.openstack import FakeOpenStack
from tests.providers.peers import free_port

PASSWORD = "pw-Sup3rSecret"


@pytest.fixture
def cloud() -> Iterator[FakeOpenStack]:
    fake = FakeOpenStack(build_seconds=0.3, delete_seconds=0.2)
    fake.start()
    fake.add_user("demo", PASSWORD, "demo-project")
    fake.add_image("ubuntu-22.04")
    fake.add_flavor("m1.small", vcpus=1, ram=2048)
    fake.add_flavor("m1.medium", vcpus=2, ram=4096)
    fake.add_network("private", cidr="10.0.0.0/24")
    fake.add_network("public", cidr="172.24.4.0/24", external=True)
    yield fake
    fake.stop()
    assert fake.unhandled == [], "the SDK called endpoints the fake does not implement"


def credential(auth_url: str, **auth: str) -> OpenStackCredential:
    base = {"authUrl": auth_url, "username": "demo", "password": PASSWORD,
            "projectName": "demo-project"}
    base.update(auth)
    return convert(
        OpenStackCredential,
        {"metadata": {"name": "cloud", "namespace": "default"},
         "spec": {"region": "region-one", "auth": base}},
    )


def request(uid: str = "0a1b2c3d-1111-4000-8000-000000000001", **spec: str) -> NodeRequest:
    fields = {"flavor": "m1.medium", "image": "ubuntu-22.04", "network": "private",
              "floating_network": "public"}
    fields.update(spec)
    return NodeRequest(
        machine_uid=uid, machine_name="worker-0", namespace="default", cluster="demo",
        region="region-one", spec=OpenStackMachineSpec(**fields), user_data="#cloud-config\n",
    )


def posts(cloud: FakeOpenStack, path: str) -> int:
    return sum(1 for m, p in cloud.requests if m == "POST" and p.startswith(path))


async def test_server_lifecycle(cloud: FakeOpenStack) -> None:
    provider = OpenStackProvider(credential(cloud.auth_url), timeout=5)
    req = request()
    try:
        assert await provider.find(req) is None
        ref = await provider.create(req)
        assert ref.provider_id == f"openstack:///{ref.id}"
        assert (await provider.status(ref)).phase == "Provisioning"
        assert await provider.addresses(ref) == []  # not ACTIVE yet: no floating IP

        # At-least-once delivery: a second create, even from a fresh process, reuses it.
        assert await provider.create(req) == ref
        restarted = OpenStackProvider(credential(cloud.auth_url), timeout=5)
        assert await restarted.create(req) == ref
        await restarted.close()
        assert posts(cloud, "/compute/v2.1/servers") == 1
        assert cloud.servers[ref.id].metadata["ccloud-machine-uid"] == req.machine_uid

        st = await wait_for(provider, ref, phase="Running", timeout=10, interval=0.1)
        assert st.power_state == "On"
        info = await provider.inspect(ref)
        port = next(p for p in cloud.ports.values() if p["device_id"] == ref.id)
        assert (info.cpus, info.memory_mib, info.nics) == (2, 4096, [port["mac_address"]])

        addrs = await provider.addresses(ref)
        assert addrs[0] == port["fixed_ips"][0]["ip_address"] and len(addrs) == 2
        assert await provider.addresses(ref) == addrs  # no second floating IP
        assert posts(cloud, "/network/v2.0/floatingips") == 1
        assert (await provider.status(ref)).addresses == addrs

        await provider.power(ref, on=False)
        await wait_for(provider, ref, phase="Stopped", power_state="Off", timeout=5)
        await provider.power(ref, on=True)
        await wait_for(provider, ref, phase="Running", timeout=5)

        assert await provider.delete(ref) in (True, False)
        assert cloud.floating_ips == {}, "floating IP released before the server"
        await wait_for_deleted(provider, ref)
        assert cloud.servers == {} and cloud.ports == {}
        assert await provider.delete(ref) is True
    finally:
        await provider.close()


async def wait_for_deleted(provider: OpenStackProvider, ref) -> None:  # noqa: ANN001
    from tests.waiting import eventually

    await eventually(lambda: provider.delete(ref), timeout=10, interval=0.1, what="server gone")


async def test_application_credential(cloud: FakeOpenStack) -> None:
    cid, secret = cloud.add_app_credential("demo", "demo-project")
    cred = credential(cloud.auth_url, username="", password="", projectName="",
                      applicationCredentialId=cid, applicationCredentialSecret=secret)
    provider = OpenStackProvider(cred, timeout=5)
    ref = await provider.create(request(floating_network=""))
    assert cloud.servers[ref.id].name == "worker-0-0a1b2c3d"
    await provider.close()


async def test_bad_password_is_a_credentials_error(cloud: FakeOpenStack) -> None:
    provider = OpenStackProvider(credential(cloud.auth_url, password="wrong-hunter2"), timeout=5)
    with pytest.raises(CredentialsError) as err:
        await provider.create(request())
    assert err.value.code == 401 and err.value.reason == "InvalidCredentials"
    assert not err.value.transient
    assert "hunter2" not in str(err.value) and PASSWORD not in str(err.value)
    assert cloud.servers == {}


async def test_revoked_credentials_after_success(cloud: FakeOpenStack) -> None:
    provider = OpenStackProvider(credential(cloud.auth_url), timeout=5)
    ref = await provider.create(request())
    cloud.set_password("demo", "rotated-elsewhere")
    cloud.revoke_tokens()
    with pytest.raises(CredentialsError):
        await provider.status(ref)
    await provider.close()


async def test_expired_token_is_renewed(cloud: FakeOpenStack) -> None:
    cloud.token_ttl = 0.5
    provider = OpenStackProvider(credential(cloud.auth_url), timeout=5)
    ref = await provider.create(request())
    issued = cloud.tokens_issued
    await wait_for(provider, ref, phase="Running", timeout=10, interval=0.6)
    assert cloud.tokens_issued > issued, "keystoneauth re-authenticated after expiry"
    await provider.close()


@pytest.mark.parametrize("status", [403, 413])
async def test_instance_quota(cloud: FakeOpenStack, status: int) -> None:
    cloud.instance_quota, cloud.quota_status = 1, status
    provider = OpenStackProvider(credential(cloud.auth_url), timeout=5)
    await provider.create(request(uid="a0000000-0000-4000-8000-000000000001"))
    with pytest.raises(QuotaError) as err:
        await provider.create(request(uid="b0000000-0000-4000-8000-000000000002"))
    assert err.value.code == status and err.value.transient
    assert "Quota exceeded for instances" in str(err.value)
    assert len(cloud.servers) == 1
    await provider.close()


async def test_floating_ip_quota(cloud: FakeOpenStack) -> None:
    cloud.floatingip_quota = 0
    provider = OpenStackProvider(credential(cloud.auth_url), timeout=5)
    ref = await provider.create(request())
    await wait_for(provider, ref, phase="Running", timeout=10, interval=0.1)
    with pytest.raises(QuotaError, match="floatingip") as err:
        await provider.addresses(ref)
    assert err.value.code == 409
    await provider.close()


async def test_unknown_image_flavor_network(cloud: FakeOpenStack) -> None:
    provider = OpenStackProvider(credential(cloud.auth_url), timeout=5)
    for spec, what in ({"image": "nope"}, "image"), ({"flavor": "xl"}, "flavor"), (
        {"network": "lan"}, "network"
    ):
        with pytest.raises(InvalidSpecError, match=f"{what} not found"):
            await provider.create(request(**spec))
    assert cloud.servers == {}
    await provider.close()


async def test_failed_build_is_reported(cloud: FakeOpenStack) -> None:
    cloud.fail_next_builds = 1
    provider = OpenStackProvider(credential(cloud.auth_url), timeout=5)
    ref = await provider.create(request())
    with pytest.raises(ProviderError, match="No valid host"):
        await wait_for(provider, ref, phase="Running", timeout=10, interval=0.1)
    st = await provider.status(ref)
    assert st.phase == "Failed" and "No valid host" in st.message
    await provider.close()


async def test_slow_cloud_times_out(cloud: FakeOpenStack) -> None:
    provider = OpenStackProvider(credential(cloud.auth_url), timeout=0.5)
    cloud.stall_seconds = 3
    with pytest.raises(ProviderTimeout) as err:
        await provider.create(request())
    assert err.value.transient
    cloud.stall_seconds = 0
    await provider.close()


async def test_unreachable_keystone() -> None:
    provider = OpenStackProvider(
        credential(f"http://127.0.0.1:{free_port()}/identity/v3"), timeout=2
    )
    with pytest.raises(ProviderUnavailable) as err:
        await provider.create(request())
    assert err.value.transient
