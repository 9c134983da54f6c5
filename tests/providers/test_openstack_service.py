"""OpenStack Machine reconciling through credentials in the store and the fake cloud:
the Cluster's credential is used (and recorded, so deletion works once the Cluster is
gone), bad credentials become ``ProviderReady=False/InvalidCredentials`` with no secret
in status, and a fixed credential recovers the machine.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
import yaml

from services.lcm import tokens
from services.lcm.agent import __main__ as agent
from services.lcm.config import load_secret
from services.providers import agent_bootstrap
from services.providers.agent_bootstrap import AgentBootstrap
from services.providers.machines import MachineReconciler
from services.providers.openstack import OpenStackProvider
from services.providers.steps import PROVIDER_READY, Backoff
from services.providers.targets import TARGET_ANNOTATION, CredentialTargets
from shared.models import Cluster, Machine, OpenStackCredential, convert
from shared.runtime import Request, TransientError
from shared.runtime import conditions as cond
from shared.store import NotFound
from tests.attach.pki import CA
from tests.fakes.openstack import FakeOpenStack
from tests.harness import Harness
from tests.providers.passes import passes_until_running
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


async def cluster_with_a_machine(h: Harness, *, floating_ip: bool = True
                                 ) -> tuple[Machine, CredentialTargets]:
    """Cluster ``os`` on the ``demo-cloud`` credential, its Machine ``w0`` (with a floating
    IP unless told not), and the targets a reconciler reaches the cloud through."""
    await h.store.create(convert(Cluster, {
        "metadata": {"name": "os", "namespace": "default"},
        "spec": {"region": REGION, "provider": "openstack", "release": "mke-7-1-0",
                 "credential": "demo-cloud"}}))
    spec = {"flavor": "m1.medium", "image": "ubuntu-22.04", "network": "private"}
    if floating_ip:
        spec["floatingNetwork"] = "public"
    machine = await h.store.create(convert(Machine, {
        "metadata": {"name": "w0", "namespace": "default"},
        "spec": {"cluster": "os", "region": REGION, "openstack": spec}}))
    return machine, CredentialTargets(h.store, OpenStackCredential,
                                      lambda c: OpenStackProvider(c, timeout=5),
                                      provider="openstack")


async def test_credentials_from_store_errors_and_recovery(h: Harness, cloud: FakeOpenStack) -> None:
    await h.store.create(cred(cloud.auth_url, "wrong-hunter2"))
    _, targets = await cluster_with_a_machine(h)
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

    m = await passes_until_running(h, rec, req)
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


async def test_a_node_is_told_who_it_is_and_where_to_report(h: Harness, cloud: FakeOpenStack,
                                                            tmp_path: Path) -> None:
    """The server's user data starts the node's LCM agent: the endpoint, the Machine and a
    token the regional endpoint accepts for this Machine only, readable by root only, and
    a unit whose command line the agent takes."""
    machine, targets = await one_machine(h, cloud)
    region_ca = CA("region-one-ca")
    bootstrap = AgentBootstrap(endpoint="https://lcm.region-one.example:8430",
                               secret=b"region-one-agent-secret", ca_pem=region_ca.pem.decode())
    rec = MachineReconciler(h.store, "openstack", targets, region=REGION, poll_interval=0.1,
                            backoff=Backoff(initial=0.1, cap=0.5), bootstrap=bootstrap)
    with contextlib.suppress(TransientError):
        await rec.reconcile(Request("w0", "default"))
    (server,) = cloud.servers.values()
    assert server.user_data.startswith("#cloud-config\n")
    config = yaml.safe_load(server.user_data)
    files = {f["path"]: f for f in config["write_files"]}
    env_file = files[agent_bootstrap.ENV_FILE]
    assert env_file["permissions"] == "0600" and env_file["owner"] == "root:root"
    env = dict(line.split("=", 1) for line in env_file["content"].splitlines())
    uid = machine.metadata.uid or ""
    assert tokens.verify(b"region-one-agent-secret", uid, env["CCLOUD_LCM_AGENT_TOKEN"])
    assert not tokens.verify(b"region-one-agent-secret", "another-uid",
                             env["CCLOUD_LCM_AGENT_TOKEN"])
    unit = files[agent_bootstrap.UNIT_FILE]["content"]
    command = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(command.removeprefix("ExecStart=").replace("\\\n", " "))
    assert argv[0] == agent_bootstrap.AGENT_BINARY
    argv = [env.get(a[2:-1], a) if a.startswith("${") else a for a in argv[1:]]
    ca_file = files[env[agent.CA_ENV]]  # the node's copy of the region's CA
    assert ca_file["content"] == region_ca.pem.decode()
    on_node = tmp_path / "lcm-ca.pem"
    on_node.write_text(ca_file["content"])
    with mock.patch.dict(os.environ, {agent.TOKEN_ENV: env["CCLOUD_LCM_AGENT_TOKEN"],
                                      agent.CA_ENV: str(on_node)}):
        args = agent.parse(argv)
    assert args.ssl is not None  # the agent will trust the region's CA
    assert (args.endpoint, args.namespace, args.name, args.executor) == (
        "https://lcm.region-one.example:8430", "default", "w0", "host")
    assert ["systemctl", "enable", "--now", "lcm-agent.service"] in config["runcmd"]
    await targets.close()


async def one_machine(h: Harness, cloud: FakeOpenStack) -> tuple[Machine, CredentialTargets]:
    await h.store.create(cred(cloud.auth_url, PASSWORD))
    return await cluster_with_a_machine(h, floating_ip=False)


async def test_no_node_is_made_before_lcms_secret_exists(h: Harness, cloud: FakeOpenStack,
                                                         tmp_path: Path) -> None:
    """Without LCM's secret (compose, ./dev up: LCM writes it in the shared data folder,
    maybe after the provider started) a node could never report: none is made yet, and
    the Machine says why; once LCM has written it, the node is made with a token from it."""
    machine, targets = await one_machine(h, cloud)
    bootstrap = agent_bootstrap.from_env(tmp_path, {"CCLOUD_AGENT_ENDPOINT": "http://lcm:8430"})
    assert bootstrap is not None
    rec = MachineReconciler(h.store, "openstack", targets, region=REGION, poll_interval=0.1,
                            backoff=Backoff(initial=0.1, cap=0.5), bootstrap=bootstrap)
    with pytest.raises(TransientError, match="AgentSecretMissing"):
        await rec.reconcile(Request("w0", "default"))
    assert cloud.servers == {}
    m = await h.store.get(Machine, "w0", "default")
    assert cond.get(m.status, PROVIDER_READY).reason == "AgentSecretMissing"  # type: ignore[union-attr]

    secret = load_secret(tmp_path)  # what LCM does at its start
    with contextlib.suppress(TransientError):
        await rec.reconcile(Request("w0", "default"))
    (server,) = cloud.servers.values()
    env_file = next(f for f in yaml.safe_load(server.user_data)["write_files"]
                    if f["path"] == agent_bootstrap.ENV_FILE)
    token = env_file["content"].split("CCLOUD_LCM_AGENT_TOKEN=")[1].strip()
    assert tokens.verify(secret, machine.metadata.uid or "", token)
    await targets.close()


async def test_a_running_node_is_made_reachable_once_and_again_when_it_lost_an_address(
    h: Harness, cloud: FakeOpenStack,
) -> None:
    await h.store.create(cred(cloud.auth_url, PASSWORD))
    _, targets = await cluster_with_a_machine(h)
    rec = MachineReconciler(h.store, "openstack", targets, region=REGION, poll_interval=0.1,
                            resync_interval=0.5, backoff=Backoff(initial=0.1, cap=0.5))
    req = Request("w0", "default")

    m = await passes_until_running(h, rec, req)
    (first,) = cloud.floating_ips.values()
    assert first["floating_ip_address"] in m.status.addresses

    def neutron() -> list[str]:
        return [path for _, path in cloud.requests if path.startswith("/network/")]

    # The node's next pass (its resync): it still has its addresses, so no port or floating
    # IP is looked up.
    cloud.requests.clear()

    async def looked() -> bool:
        await rec.reconcile(req)
        return bool(cloud.requests)

    await eventually(looked, timeout=5, interval=0.05, what="the resync's pass")
    assert neutron() == []
    assert (await h.store.get(Machine, "w0", "default")).status.addresses == m.status.addresses

    # The floating IP is deleted behind our back: the next pass makes the node reachable again.
    cloud.floating_ips.clear()

    async def reachable_again() -> Machine | None:
        await rec.reconcile(req)
        got = await h.store.get(Machine, "w0", "default")
        return got if cloud.floating_ips and got.status.addresses != m.status.addresses else None

    m2 = await eventually(reachable_again, timeout=5, interval=0.05, what="a new floating IP")
    (second,) = cloud.floating_ips.values()
    assert second["floating_ip_address"] in m2.status.addresses
    assert first["floating_ip_address"] not in m2.status.addresses
    await targets.close()
