"""Ports clients outside the cluster reach: nodes -> LCM's agents port and the mirror, BMCs
-> the bare-metal provider's config drives. ``expose`` renders a second Service
(LoadBalancer or NodePort) beside the ClusterIP one; installed by the real Helm library
into a fake API server that validates every object against the Kubernetes schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import helm
from tests.deploy.test_manifest import MANIFEST

NS = "ccloud"
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "lcm-lb": ("lcm", {"expose": {
        "enabled": True, "loadBalancerIP": "192.0.2.40", "externalTrafficPolicy": "Local",
        "annotations": {"metallb.universe.tf/address-pool": "nodes"}}}),
    "media-nodeport": ("provider-baremetal", {"expose": {
        "enabled": True, "type": "NodePort", "ports": ["media"],
        "nodePorts": {"media": 30436}}}),
    "off": ("release", {}),
    "bad-type": ("lcm", {"expose": {"enabled": True, "type": "ClusterIP"}}),
    "bad-port": ("lcm", {"expose": {"enabled": True, "ports": ["agent"]}}),
    "bad-nodeport": ("lcm", {"expose": {"enabled": True, "type": "NodePort",
                                        "nodePorts": {"health": 30090, "agnets": 30430}}}),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if why := helm.helm_available():
        pytest.skip(why)
    tmp: Path = tmp_path_factory.mktemp("expose")
    jobs, clusters = [], {}
    with helm.clusters() as ct:
        for name, (chart, values) in CASES.items():
            clusters[name] = ct.new(tmp / f"{name}.kubeconfig")
            vf = tmp / f"{name}.yaml"
            vf.write_text(yaml.safe_dump({"global": {"natsUrl": "nats://nats:4222"}, **values}))
            jobs.append({"action": "install", "chart": str(helm.CHARTS / chart), "id": name,
                         "release": "cc", "namespace": NS,
                         "kubeconfig": str(tmp / f"{name}.kubeconfig"),
                         "values_files": [str(vf)]})
        results = dict(zip(CASES, helm.run_helm(jobs), strict=True))
        yield results, {n: {o["metadata"]["name"]: o for o in c.objects("Service")}
                        for n, c in clusters.items()}


def test_every_service_with_ports_can_be_exposed() -> None:
    for svc in MANIFEST.services.values():
        values = yaml.safe_load((helm.CHARTS / svc.name / "values.yaml").read_text())
        assert ("expose" in values) == bool(svc.ports), svc.name
        if svc.ports:
            assert values["expose"]["enabled"] is False, "off unless asked for"


def test_nodes_reach_lcm_through_a_load_balancer(runs: Any) -> None:
    results, services = runs
    assert results["lcm-lb"]["ok"], results["lcm-lb"].get("error")
    inside, outside = services["lcm-lb"]["cc-lcm"], services["lcm-lb"]["cc-lcm-external"]
    assert inside["spec"]["type"] == "ClusterIP", "the in-cluster Service is unchanged"
    assert outside["spec"]["type"] == "LoadBalancer"
    assert outside["spec"]["selector"] == inside["spec"]["selector"]
    assert outside["spec"]["loadBalancerIP"] == "192.0.2.40"
    assert outside["spec"]["externalTrafficPolicy"] == "Local"
    assert outside["metadata"]["annotations"]["metallb.universe.tf/address-pool"] == "nodes"
    # No ports named: every port of the service, the health port not among them.
    assert [(p["name"], p["port"]) for p in outside["spec"]["ports"]] == [("agents", 8430)]


def test_bmcs_reach_the_config_drives_on_a_node_port(runs: Any) -> None:
    results, services = runs
    assert results["media-nodeport"]["ok"], results["media-nodeport"].get("error")
    outside = services["media-nodeport"]["cc-provider-baremetal-external"]
    assert outside["spec"]["type"] == "NodePort"
    assert [{k: v for k, v in p.items() if k != "protocol"} for p in outside["spec"]["ports"]
            ] == [{"name": "media", "port": 8436, "targetPort": 8436, "nodePort": 30436}]


def test_nothing_is_exposed_unless_asked(runs: Any) -> None:
    results, services = runs
    assert results["off"]["ok"], results["off"].get("error")
    assert "cc-release-external" not in services["off"] and "cc-release" in services["off"]


@pytest.mark.parametrize("case, said", [
    ("bad-type", 'expose.type must be LoadBalancer or NodePort, not "ClusterIP"'),
    ("bad-port", 'expose.ports: "agent" is not a port of lcm (its ports: agents)'),
    ("bad-nodeport", 'expose.nodePorts: "agnets" is not a port of lcm'),
])
def test_a_mistake_is_refused_with_a_reason(runs: Any, case: str, said: str) -> None:
    results, services = runs
    assert not results[case]["ok"]
    assert said in results[case]["error"]
    assert not services[case], "nothing installed"
