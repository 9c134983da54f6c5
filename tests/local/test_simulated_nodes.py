"""The local node launcher boots simulated nodes too: a node the simulated provider made
with cloud-init user data runs the LCM agent that data names, while the node is up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from services.lcm.tokens import machine_token
from services.local.nodes import NodeLauncher
from services.providers.agent_bootstrap import ENV_FILE, AgentBootstrap
from services.providers.contract import NodeRequest
from services.providers.simulated import SimulatedConfig, SimulatedProvider
from services.providers.simulated.nodes import KVNodes, nodes_bucket
from shared.models import Machine, convert
from tests.harness import Harness

SECRET = b"launcher-test-secret"
# Nothing listens there: the agent keeps retrying, which is all these tests need of it.
BOOT = AgentBootstrap(endpoint="http://127.0.0.1:9", secret=SECRET)


@pytest.fixture
async def nodes(nc: NATS, prefix: str) -> KVNodes:
    table = KVNodes(nc, bucket=nodes_bucket(prefix))
    await table.start()
    return table


@pytest.fixture
async def launcher(h: Harness, nodes: KVNodes, tmp_path: Path) -> AsyncIterator[NodeLauncher]:
    nl = NodeLauncher(h.store, region="local", data_dir=tmp_path, simulated=nodes)
    try:
        yield nl
    finally:
        await nl.stop()


def machine(name: str, uid: str) -> Machine:
    return convert(Machine, {
        "metadata": {"name": name, "namespace": "default", "uid": uid},
        "spec": {"cluster": "c", "region": "local", "role": "worker", "simulated": {}}})


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


async def test_an_up_node_runs_the_agent_its_user_data_names(
    launcher: NodeLauncher, nodes: KVNodes, tmp_path: Path
) -> None:
    provider = SimulatedProvider(SimulatedConfig(), nodes=nodes)
    m = machine("w0", "uid-w0")
    ref = await provider.create(NodeRequest.from_machine(m, "simulated",
                                                         user_data=BOOT.user_data(m)))
    await launcher.sync()
    assert launcher.nodes == {}, "made but never powered on: nothing boots"

    await provider.power(ref, on=True)
    await launcher.sync()
    node = launcher.nodes[ref.name]
    assert node.machine == "default/w0" and node.proc.returncode is None
    env = (tmp_path / "nodes" / ref.name / ENV_FILE.lstrip("/")).read_text()
    assert f"CCLOUD_LCM_AGENT_TOKEN={machine_token(SECRET, 'uid-w0')}" in env
    args = cmdline(node.proc.pid)
    address = (await provider.addresses(ref))[0]
    for flag, value in (("--machine", "default/w0"), ("--endpoint", BOOT.endpoint),
                        ("--ip", address), ("--hostname", ref.name)):
        assert args[args.index(flag) + 1] == value

    await launcher.sync()
    assert launcher.nodes[ref.name] is node, "a running agent is left alone"

    await provider.power(ref, on=False)
    await launcher.sync()
    assert launcher.nodes == {}
    assert node.proc.returncode is not None, "powered off: its agent stopped"


async def test_no_agent_without_usable_user_data(
    launcher: NodeLauncher, nodes: KVNodes, caplog: pytest.LogCaptureFixture
) -> None:
    provider = SimulatedProvider(SimulatedConfig(), nodes=nodes)
    plain = machine("plain", "uid-plain")
    refs = [await provider.create(NodeRequest.from_machine(plain, "simulated"))]
    for name, data in (("no-env", "#cloud-config\nwrite_files: []\n"),
                       ("not-yaml", "#cloud-config\nwrite_files: [\n")):
        refs.append(await provider.create(NodeRequest.from_machine(
            machine(name, f"uid-{name}"), "simulated", user_data=data)))
    for ref in refs:
        await provider.power(ref, on=True)
    await launcher.sync()
    await launcher.sync()
    assert launcher.nodes == {}
    said = [r.getMessage() for r in caplog.records if "no agent starts" in r.getMessage()]
    # once for each node with user data it cannot boot from; none for the plain one
    assert sorted(m.split(":")[0] for m in said) == [
        f"simulated node {refs[1].name}", f"simulated node {refs[2].name}"], said
