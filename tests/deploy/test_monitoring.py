"""The umbrella's Prometheus Operator objects (templates/monitoring.yaml), rendered by the
real Helm library into a fake API server that serves the monitoring.coreos.com kinds: off by
default; on, a ServiceMonitor per service scraping its health port and a PrometheusRule
whose alerts use only series and labels the gateway exports (services/api/fleet_metrics.py),
so the alerts and the exporter cannot drift apart. With promtool (Debian's prometheus
package, scripts/test-deps), the rules are also checked and unit-tested on series the real
collector produced."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.api.fleet_metrics import METRICS
from tests.deploy import fleet_series, helm
from tests.deploy.test_manifest import SERVICES

NS = "ccloud"
PROMTOOL_PATHS = (helm.ROOT / "var" / "promtool" / "promtool",)
FLEET_ALERTS = {"ClusterNotReady", "MachineNotReady", "RegionDegraded", "ArtifactMirrorFailing",
                "CredentialInvalid", "BareMetalHostUnreachable", "MachineRemediationFailed",
                "MachineHealthCheckShortCircuited", "MachinePoolReplicasMismatch",
                "GracefulRebootFailed"}


class Rendered:
    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}

    def installed(self, name: str) -> None:
        result = self.results[name]
        assert result["ok"], result.get("error")

    def of(self, install: str, kind: str) -> dict[str, dict[str, Any]]:
        self.installed(install)
        return self.objects[install].get(kind, {})


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    why = helm.helm_available()
    if why:
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("monitoring")
    mgmt = str(helm.UMBRELLA / "values-management.yaml")
    regional = str(helm.UMBRELLA / "values-regional.yaml")
    leaf = tmp / "leaf.yaml"
    leaf.write_text(yaml.safe_dump({"nats": {"managementLeafURL": "nats-leaf://mgmt:7422"}}))
    both = tmp / "both.yaml"
    both.write_text(yaml.safe_dump({"monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "prom"}}}}))
    rules_only = tmp / "rules.yaml"
    rules_only.write_text(yaml.safe_dump({"monitoring": {"prometheusRule": {"enabled": True}}}))
    installs = {
        "off": [mgmt],
        "mgmt": [mgmt, str(both)],
        "regional": [regional, str(leaf), str(both)],
        "rules-only": [mgmt, str(rules_only)],
    }
    out = Rendered()
    with helm.clusters() as ct:
        servers = {}
        jobs = []
        for name, values in installs.items():
            servers[name] = ct.new(tmp / f"{name}.kubeconfig")
            for kind, plural in (("ServiceMonitor", "servicemonitors"),
                                 ("PrometheusRule", "prometheusrules")):
                helm.install_crd(servers[name].url, "monitoring.coreos.com", kind, plural)
            jobs.append({"action": "install", "chart": str(helm.UMBRELLA), "id": name,
                         "release": "cc", "namespace": NS,
                         "kubeconfig": str(tmp / f"{name}.kubeconfig"), "values_files": values})
        results = helm.run_helm(jobs)
        for job, result in zip(jobs, results, strict=True):
            out.results[job["id"]] = result
            by_kind: dict[str, dict[str, dict[str, Any]]] = {}
            for obj in servers[job["id"]].objects():
                by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
            out.objects[job["id"]] = by_kind
    return out


def rules_of(rendered: Rendered, install: str) -> dict[str, list[dict[str, Any]]]:
    (rule,) = rendered.of(install, "PrometheusRule").values()
    return {g["name"]: g["rules"] for g in rule["spec"]["groups"]}


def test_off_by_default(rendered: Rendered) -> None:
    assert rendered.of("off", "ServiceMonitor") == {}
    assert rendered.of("off", "PrometheusRule") == {}
    assert rendered.of("off", "Deployment")  # the set itself is there


@pytest.mark.parametrize("install", ["mgmt", "regional"])
def test_a_service_monitor_per_service_scrapes_its_health_port(rendered: Rendered,
                                                               install: str) -> None:
    monitors = rendered.of(install, "ServiceMonitor")
    deployments = rendered.of(install, "Deployment")
    assert set(monitors) == set(deployments) and monitors
    services = rendered.of(install, "Service")
    for name, sm in monitors.items():
        spec = sm["spec"]
        assert sm["metadata"]["labels"]["release"] == "prom"
        assert spec["namespaceSelector"] == {"matchNames": [NS]}
        (endpoint,) = spec["endpoints"]
        assert endpoint["path"] == "/metrics" and endpoint["honorLabels"] is True
        assert endpoint["interval"] == "30s"
        # The Services the selector picks, and the port it names on them: the pod's probe
        # port (CCLOUD_HEALTH_PORT), where /metrics answers.
        picked = [s for s in services.values()
                  if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
        assert [s["metadata"]["name"] for s in picked] == [name]
        port = next(p for p in picked[0]["spec"]["ports"] if p["name"] == endpoint["port"])
        pod = deployments[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert port["targetPort"] == container["readinessProbe"]["httpGet"]["port"]
    api = next((s for s in SERVICES if s.name == "api"), None)
    if install == "mgmt" and api is not None:
        port = monitors["cc-api"]["spec"]["endpoints"][0]["port"]
        assert port == "health" and api.health_port not in api.ports.values(), \
            "the fleet's series must not be on the public API port"


def test_the_rule_has_the_fleet_alerts_and_service_down_per_service(rendered: Rendered) -> None:
    groups = rules_of(rendered, "mgmt")
    assert {r["alert"] for r in groups["ccloud-fleet"]} == FLEET_ALERTS
    down = groups["ccloud-services"]
    jobs = {re.search(r'job="([^"]+)"', r["expr"]).group(1)  # type: ignore[union-attr]
            for r in down}
    # Prometheus Operator names a ServiceMonitor's job after the Service.
    assert jobs == set(rendered.of("mgmt", "ServiceMonitor"))
    assert all(r["alert"] == "ServiceDown" and f'namespace="{NS}"' in r["expr"] for r in down)
    for rule in groups["ccloud-fleet"] + down:
        assert rule["for"] and rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    (rule,) = rendered.of("mgmt", "PrometheusRule").values()
    assert rule["metadata"]["labels"]["release"] == "prom"


def test_the_regional_set_has_service_alerts_only(rendered: Rendered) -> None:
    """No gateway there, so no fleet series: only its services' ServiceDown."""
    assert set(rules_of(rendered, "regional")) == {"ccloud-services"}


def test_rules_without_service_monitors_have_no_service_down(rendered: Rendered) -> None:
    """Without the ServiceMonitors there are no such jobs: ServiceDown would always fire."""
    assert set(rules_of(rendered, "rules-only")) == {"ccloud-fleet"}
    assert rendered.of("rules-only", "ServiceMonitor") == {}


def test_install_notes_say_what_is_monitored(rendered: Rendered) -> None:
    """With monitoring on, the notes name what is scraped (every ServiceMonitor rendered;
    the fleet's series on the gateway's health port) and where the alerts are (the
    PrometheusRule and its groups); off, they say nothing of it."""
    def notes(install: str) -> str:
        rendered.installed(install)
        return rendered.results[install]["result"]["info"]["notes"]

    assert "Monitoring" not in notes("off")
    mgmt = notes("mgmt")
    monitors = sorted(rendered.of("mgmt", "ServiceMonitor"))
    assert "ServiceMonitors scrape /metrics on each service's health port every 30s: " \
        + " ".join(monitors) + "\n" in mgmt
    assert "cc-api, port health) also carries the fleet's state" in mgmt
    (rule,) = rendered.of("mgmt", "PrometheusRule")
    groups = " ccloud-fleet (clusters, machines, health checks, regions, mirrors, " \
        "credentials, hosts) ccloud-services (ServiceDown per service)."
    assert f"Alerts: PrometheusRule {rule} in namespace {NS}, groups{groups}" in mgmt
    regional = notes("regional")
    (rule,) = rendered.of("regional", "PrometheusRule")
    assert " ".join(sorted(rendered.of("regional", "ServiceMonitor"))) in regional
    assert f"Alerts: PrometheusRule {rule} in namespace {NS}, groups ccloud-services " \
        "(ServiceDown per service)." in regional
    assert "fleet's state" not in regional and "ccloud-fleet" not in regional
    rules_only = notes("rules-only")
    assert "ServiceMonitors" not in rules_only and "ccloud-services" not in rules_only
    assert "ccloud-fleet (clusters" in rules_only


# --- the alerts against the exporter -------------------------------------------------------

METRIC = re.compile(r"\bccloud_[a-z_]+")
# A vector selector with its matchers, and the label lists of by (...) / on (...).
SELECTOR = re.compile(r"\b(ccloud_[a-z_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")
LABEL_REF = re.compile(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)")
# An annotation's query and the label of its first result it prints.
QUERY_PRINT = re.compile(r'printf\s+"((?:[^"\\]|\\.)*)"[^}]*\|\s*query\s*\}\}'
                         r'\{\{\s*\.\s*\|\s*first\s*\|\s*label\s+"([^"]+)"')


def fleet_rules(rendered: Rendered) -> list[dict[str, Any]]:
    return rules_of(rendered, "mgmt")["ccloud-fleet"]


def printed(rule: dict[str, Any]) -> list[tuple[str, str]]:
    """(query, label it prints) of each query in the alert's annotations."""
    return [m for text in rule["annotations"].values() for m in QUERY_PRINT.findall(text)]


def queries(rule: dict[str, Any]) -> list[str]:
    """The alert's expression and the PromQL its annotations query."""
    return [rule["expr"]] + [q for q, _ in printed(rule)]


def grouping(q: str) -> list[set[str]]:
    return [{n.strip() for n in g.split(",") if n.strip()} for g in GROUPING.findall(q)]


def test_every_metric_an_alert_uses_is_exported(rendered: Rendered) -> None:
    used = {m for rule in fleet_rules(rendered) for q in queries(rule)
            for m in METRIC.findall(q)}
    assert used, "no ccloud_ metric found in the alerts"
    assert used <= set(METRICS), f"not exported: {sorted(used - set(METRICS))}"
    assert sum(len(printed(r)) for r in fleet_rules(rendered)) >= 3  # the regex still finds them


def test_every_label_an_alert_uses_is_on_its_metric(rendered: Rendered) -> None:
    """Matchers, by/on lists, the labels annotations print and the labels their queries
    print are labels of the metrics read (a renamed label fails here, not silently in
    Prometheus with an alert that never fires or says nothing)."""
    for rule in fleet_rules(rendered):
        name = rule["alert"]
        for q in queries(rule):
            metrics = set(METRIC.findall(q))
            everywhere = set.union(*(set(METRICS[m][1]) for m in metrics))
            for metric, matchers in SELECTOR.findall(q):
                names = set(MATCHER.findall(matchers))
                assert names <= set(METRICS[metric][1]), (name, metric, names)
            for names in grouping(q):
                assert names <= everywhere, (name, names - everywhere)
        # The labels the alert carries: the first max by (...) of its expression, which
        # every metric of the expression has.
        carried = grouping(rule["expr"])[0]
        common = set.intersection(*(set(METRICS[m][1]) for m in METRIC.findall(rule["expr"])))
        assert carried <= common, (name, carried - common)
        for text in rule["annotations"].values():
            refs = set(LABEL_REF.findall(text))
            assert refs <= carried, (name, refs - carried)
        for q, label in printed(rule):
            assert any(label in g for g in grouping(q)), (name, label, q)


def test_annotations_name_the_object(rendered: Rendered) -> None:
    """Each fleet alert's summary names the object by the labels that identify it."""
    names = {"ClusterNotReady": "cluster", "MachineNotReady": "machine",
             "ArtifactMirrorFailing": "mirror", "CredentialInvalid": "credential",
             "BareMetalHostUnreachable": "host", "RegionDegraded": "region",
             "MachineRemediationFailed": "machine", "MachineHealthCheckShortCircuited": "check",
             "MachinePoolReplicasMismatch": "pool", "GracefulRebootFailed": "cluster"}
    for rule in fleet_rules(rendered):
        summary = rule["annotations"]["summary"]
        assert f"$labels.{names[rule['alert']]}" in summary, rule["alert"]
        if rule["alert"] != "RegionDegraded":
            assert "$labels.namespace" in summary
        assert "max by (" in rule["expr"], "replicas would double the alert"


# --- promtool ------------------------------------------------------------------------------


def promtool() -> str:
    for candidate in (*map(str, PROMTOOL_PATHS), shutil.which("promtool")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("promtool missing: scripts/test-deps extracts it from Debian's prometheus")


def rule_file(rendered: Rendered, tmp_path: Path) -> Path:
    (rule,) = rendered.of("mgmt", "PrometheusRule").values()
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def test_promtool_checks_the_rules(rendered: Rendered, tmp_path: Path) -> None:
    out = subprocess.run([promtool(), "check", "rules", str(rule_file(rendered, tmp_path))],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    rules = len(FLEET_ALERTS) + len(rendered.of("mgmt", "ServiceMonitor"))
    assert f"SUCCESS: {rules} rules found" in out.stdout, out.stdout + out.stderr
    assert "duplicate" not in out.stdout + out.stderr


def test_alerts_fire_on_what_the_collector_exports(rendered: Rendered, tmp_path: Path) -> None:
    """promtool evaluates the rendered rules over series the real collector produced from
    objects (two gateway replicas exporting the same): each broken object raises exactly one
    alert, its annotations printing the reason its conditions give; the healthy and the
    deliberate (a cluster and a machine in maintenance) raise none. ServiceDown fires for
    every scraped service but the gateway, the only one up here."""
    tool = promtool()
    groups = rules_of(rendered, "mgmt")
    rules = {down_job(r): r for r in groups["ccloud-services"]}
    service_down = {"eval_time": "40m", "alertname": "ServiceDown", "exp_alerts": [
        {"exp_labels": {**rule["labels"], "namespace": NS, "job": job},  # with service
         "exp_annotations": {k: fleet_series.expand(v, {"namespace": NS, "job": job}, 1, {})
                             for k, v in rule["annotations"].items()}}
        for job, rule in sorted(rules.items()) if job != "cc-api"]}
    tests = {"rule_files": [str(rule_file(rendered, tmp_path))], "evaluation_interval": "1m",
             "tests": [{"interval": "1m",
                        "input_series": [{"series": s, "values": f"{v:g}x40"}
                                         for s, v in fleet_series.exported(replicas=2)],
                        "alert_rule_test": fleet_series.expected(groups["ccloud-fleet"], "40m")
                        + [service_down]}]}
    path = tmp_path / "tests.yaml"
    path.write_text(yaml.safe_dump(tests, width=1000))
    out = subprocess.run([tool, "test", "rules", str(path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def down_job(rule: dict[str, Any]) -> str:
    return re.search(r'job="([^"]+)"', rule["expr"]).group(1)  # type: ignore[union-attr]



def test_health_check_alerts_fire_exactly_when_due(rendered: Rendered, tmp_path: Path) -> None:
    """Over checks whose status changes (exported by the real collector, two replicas):
    MachineRemediationFailed fires from the evaluation its target turns Failed and stops
    once the target is gone (healthy again); MachineHealthCheckShortCircuited fires only
    after remediation has been held for 15 minutes, not for a shorter hold, nor for a
    check that may remediate though some of its machines are unhealthy."""
    tool = promtool()
    fs = fleet_series
    # 4 stages: minutes 0-4, 5-9, 10-24, 25-39.
    stages = [
        (5, [fs.mhc("flap", "a", "False", 3, 1), fs.mhc("held", "b", "True", 4, 3)]),
        (5, [fs.mhc("flap", "a", "False", 3, 1),
             fs.mhc("held", "b", "False", 4, 1, ("b-w-0", "Rebooting"))]),
        (15, [fs.mhc("flap", "a", "True", 3, 2),
              fs.mhc("held", "b", "False", 4, 1, ("b-w-0", "Failed"))]),
        (15, [fs.mhc("flap", "a", "True", 3, 3), fs.mhc("held", "b", "False", 4, 2)]),
    ]
    held = {"namespace": fs.NS, "check": "held", "cluster": "b", "region": "dc1"}
    failed = {"MachineRemediationFailed": [({**held, "machine": "b-w-0"}, 1, {})]}
    short = {"MachineHealthCheckShortCircuited": [(held, 0, {})]}
    none = {"MachineRemediationFailed": [], "MachineHealthCheckShortCircuited": []}
    rules = fleet_rules(rendered)
    checks = {"9m": none, "10m": {**none, **failed}, "14m": {**none, **failed},
              "19m": {**none, **failed}, "20m": {**failed, **short}, "24m": {**failed, **short},
              "31m": {**none, **short}, "39m": {**none, **short}}
    alert_tests = [t for at, firing in checks.items()
                   for t in fs.expected(rules, at, firing)]
    assert len(alert_tests) == 2 * len(checks)
    tests = {"rule_files": [str(rule_file(rendered, tmp_path))], "evaluation_interval": "1m",
             "tests": [{"interval": "1m", "input_series": fs.timeline(stages),
                        "alert_rule_test": alert_tests}]}
    path = tmp_path / "tests.yaml"
    path.write_text(yaml.safe_dump(tests, width=1000))
    out = subprocess.run([tool, "test", "rules", str(path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
