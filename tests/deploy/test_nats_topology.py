"""The deployable NATS topology (chart role standalone/hub/leaf, compose's
``deploy/nats/<role>.conf``) is what ``services/regional/topology.py`` writes for the
partition tests' servers, and real nats-server takes it.

Helm renders the charts through the real library into a fake API server (as in
test_helm.py); each rendered ``nats.conf`` is checked by ``nats-server -c FILE -t``. The
compose leaf config is started for real as a leaf of a hub and must join it.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml

from services.regional import topology
from shared.natsserver import NatsServer, binary, free_port
from tests.deploy import helm
from tests.deploy.test_compose_image import compose
from tests.deploy.test_manifest import generate
from tests.waiting import eventually

LEAF_URL = "nats-leaf://nats-leafnodes.mgmt.example:7422"
NS = "ccloud"


def conf_of(cluster: Any) -> str:
    (cm,) = [o for o in cluster.objects("ConfigMap") if o["metadata"]["name"].endswith("-config")]
    return cm["data"]["nats.conf"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Any:
    why = helm.helm_available()
    if why:
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("nats-topology")

    def values(name: str, data: dict[str, Any]) -> str:
        (tmp / f"{name}.yaml").write_text(yaml.safe_dump(data))
        return str(tmp / f"{name}.yaml")

    mgmt = str(helm.UMBRELLA / "values-management.yaml")
    regional = str(helm.UMBRELLA / "values-regional.yaml")
    url = values("url", {"nats": {"managementLeafURL": LEAF_URL},
                         "global": {"prefix": "acme"}})
    nats_chart = helm.CHARTS / "nats"
    installs: dict[str, tuple[Path, list[str]]] = {
        "hub": (helm.UMBRELLA, [mgmt]),
        "leaf": (helm.UMBRELLA, [regional, url]),
        "standalone": (nats_chart, []),
        "leaf-without-url": (helm.UMBRELLA, [regional]),
        "bad-role": (nats_chart, [values("edge", {"role": "edge"})]),
        "leaf-named-management": (nats_chart, [values("mgmt-leaf", {
            "role": "leaf", "managementLeafURL": LEAF_URL,
            "global": {"region": topology.MANAGEMENT_DOMAIN}})]),
    }
    out: dict[str, Any] = {}
    with helm.clusters() as ct:
        jobs = []
        for name, (chart, files) in installs.items():
            out[name] = ct.new(tmp / f"{name}.kubeconfig")
            jobs.append({"action": "install", "chart": str(chart), "id": name, "release": "cc",
                         "namespace": NS, "kubeconfig": str(tmp / f"{name}.kubeconfig"),
                         "values_files": files})
        results = helm.run_helm(jobs)
        yield {j["id"]: (r, out[j["id"]]) for j, r in zip(jobs, results, strict=True)}


def check_config(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CCLOUD_")}
    return subprocess.run([binary(), "-c", str(path), "-t"], capture_output=True, text=True,
                          timeout=30, env={**base, **env})


@pytest.mark.parametrize("role", ["hub", "leaf", "standalone"])
def test_rendered_config_is_valid_for_nats_server(rendered: Any, role: str,
                                                  tmp_path: Path) -> None:
    result, cluster = rendered[role]
    assert result["ok"], result.get("error")
    path = tmp_path / "nats.conf"
    path.write_text(conf_of(cluster))
    out = check_config(path, POD_NAME="cc-nats-0")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "is valid" in out.stdout + out.stderr


def test_validity_check_refuses_a_bad_config(tmp_path: Path) -> None:
    """What the check above relies on: ``-t`` fails a config nats-server would not run."""
    path = tmp_path / "nats.conf"
    path.write_text(topology.leaf_conf(hub_leaf_url=LEAF_URL, region="r1", prefix="p")
                    .replace('reconnect: "1s"', "reconnect: soon"))
    assert check_config(path).returncode != 0


def blocks(conf: str) -> str:
    """The config without the chart's indentation, for comparing with topology.py's text."""
    return textwrap.dedent(conf)


def test_leaf_is_what_the_partition_tests_run(rendered: Any, tmp_path: Path) -> None:
    _, cluster = rendered["leaf"]
    conf = blocks(conf_of(cluster))
    # The same remote, deny rules and reconnect the tests' leaf_args write, for this prefix.
    leaf_args = topology.leaf_args(tmp_path / "leaf.conf", hub_leaf_url=LEAF_URL,
                                   region="region-one", prefix="acme")
    expected = Path(leaf_args[1]).read_text()
    assert topology.leaf_leafnodes(LEAF_URL, "acme") in conf
    assert topology.leaf_leafnodes(LEAF_URL, "acme") in expected
    assert '"acme.>"' in conf and '"ccloud.>"' not in conf
    jetstream = conf.split("jetstream {", 1)[1].split("}", 1)[0]
    assert topology.jetstream_domain("region-one") in jetstream.splitlines()[-1]
    assert topology.jetstream_domain("region-one") in expected


def test_hub_is_what_the_partition_tests_run(rendered: Any, tmp_path: Path) -> None:
    _, cluster = rendered["hub"]
    conf = blocks(conf_of(cluster))
    hub_args = topology.hub_args(tmp_path / "hub.conf", leaf_port=topology.LEAFNODE_PORT)
    expected = Path(hub_args[1]).read_text()
    assert topology.jetstream_domain(topology.MANAGEMENT_DOMAIN) in expected
    assert topology.jetstream_domain(topology.MANAGEMENT_DOMAIN) in conf
    # Only the listen address differs: a deployment listens on every interface.
    listen = f"0.0.0.0:{topology.LEAFNODE_PORT}"
    assert topology.hub_leafnodes(listen) in conf
    assert topology.hub_leafnodes(f"127.0.0.1:{topology.LEAFNODE_PORT}") in expected
    services = {s["metadata"]["name"]: s for s in cluster.objects("Service")}
    ports = services["cc-nats-leafnodes"]["spec"]["ports"]
    assert [(p["port"], p["targetPort"]) for p in ports] == [(7422, "leafnodes")]
    (sts,) = cluster.objects("StatefulSet")
    container_ports = {p["name"]: p["containerPort"]
                       for p in sts["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert container_ports["leafnodes"] == topology.LEAFNODE_PORT


def test_standalone_has_no_leafnodes_or_domain(rendered: Any) -> None:
    _, cluster = rendered["standalone"]
    conf = conf_of(cluster)
    assert "leafnodes" not in conf and "domain" not in conf
    assert "cc-nats-leafnodes" not in {s["metadata"]["name"] for s in cluster.objects("Service")}


@pytest.mark.parametrize(("case", "message"), [
    ("leaf-without-url", "nats.managementLeafURL"),
    ("bad-role", 'nats.role must be one of standalone, hub, leaf, not "edge"'),
    ("leaf-named-management", "global.region may not be management"),
])
def test_unusable_values_are_refused_with_a_reason(rendered: Any, case: str,
                                                   message: str) -> None:
    result, _ = rendered[case]
    assert not result["ok"]
    assert message in result["error"]


def test_generated_topology_files_are_current() -> None:
    texts = generate.compose_nats_confs()
    assert set(texts) == set(topology.ROLES)
    for role, text in texts.items():
        assert (generate.NATS_CONF / f"{role}.conf").read_text() == text
    tpl = generate.NATS_CHART / "templates" / "_topology.tpl"
    assert tpl.read_text() == generate.nats_chart_topology()


def test_a_region_named_management_is_refused() -> None:
    with pytest.raises(ValueError, match="management"):
        topology.leaf_conf(hub_leaf_url=LEAF_URL, region="management", prefix="p")
    with pytest.raises(ValueError, match="quotes"):
        topology.value('a"b')


def test_compose_role_picks_the_config() -> None:
    env = {"CCLOUD_NATS_ROLE": "leaf", "CCLOUD_REGION": "r9",
           "CCLOUD_MANAGEMENT_LEAF_URL": LEAF_URL}
    out = compose("--profile", "regional", "config", "--format", "json", env=env)
    assert out.returncode == 0, out.stderr
    services = json.loads(out.stdout)["services"]
    nats_svc = services["nats"]
    assert nats_svc["command"][-2:] == ["-c", "/etc/nats/leaf.conf"]
    assert nats_svc["environment"] == {"CCLOUD_REGION": "r9",
                                       "CCLOUD_MANAGEMENT_LEAF_URL": LEAF_URL}
    (mount,) = [v for v in nats_svc["volumes"] if v["target"] == "/etc/nats"]
    assert Path(mount["source"]) == generate.NATS_CONF and mount["read_only"]
    # The services serve the region the leaf's domain names.
    assert services["lcm"]["environment"]["CCLOUD_REGION"] == "r9"
    default = json.loads(compose("config", "--format", "json").stdout)["services"]
    assert default["nats"]["command"][-1] == "/etc/nats/standalone.conf"
    assert default["lcm"]["environment"]["CCLOUD_REGION"] == "local"


@pytest.mark.parametrize("role", topology.ROLES)
def test_compose_configs_are_valid(role: str) -> None:
    out = check_config(generate.NATS_CONF / f"{role}.conf", CCLOUD_REGION="r9",
                       CCLOUD_MANAGEMENT_LEAF_URL=LEAF_URL)
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_leaf_without_hub_url_names_the_variable() -> None:
    out = check_config(generate.NATS_CONF / "leaf.conf", CCLOUD_REGION="r9")
    assert out.returncode != 0
    assert "CCLOUD_MANAGEMENT_LEAF_URL" in out.stdout + out.stderr


async def test_compose_leaf_config_joins_a_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    """The compose leaf.conf as is, on a real server: domain from CCLOUD_REGION, and
    management's JetStream reachable through the leafnode under its domain."""
    leaf_port = free_port()
    hub = NatsServer(tmp_path / "hub", server_name="hub",
                     extra_args=topology.hub_args(tmp_path / "hub.conf", leaf_port=leaf_port))
    monkeypatch.setenv("CCLOUD_REGION", "r9")
    monkeypatch.setenv("CCLOUD_MANAGEMENT_LEAF_URL", f"nats-leaf://127.0.0.1:{leaf_port}")
    leaf = NatsServer(tmp_path / "leaf", server_name="leaf",
                      extra_args=["-c", str(generate.NATS_CONF / "leaf.conf")])
    await hub.astart()
    try:
        await leaf.astart()
        nc = await nats.connect(leaf.url)
        try:
            assert (await nc.jetstream().account_info()).domain == "r9"

            async def management_answers() -> str | None:
                try:
                    info = await nc.jetstream(domain=topology.MANAGEMENT_DOMAIN).account_info()
                except Exception:  # noqa: BLE001 - not linked yet
                    return None
                return info.domain

            assert await eventually(management_answers, timeout=15,
                                    what="management's JetStream through the leafnode") == (
                topology.MANAGEMENT_DOMAIN)
        finally:
            await nc.close()
    finally:
        await leaf.astop()
        await hub.astop()
