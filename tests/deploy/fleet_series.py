"""A small fleet with something wrong in each kind, the series the real FleetCollector
exports for it, and which alerts must fire on them (test_monitoring.py runs promtool); and
machine health checks whose status changes over time, for the alerts' timing."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.api.fleet_metrics import FleetCollector
from shared.models import (
    ArtifactFailure,
    ArtifactMirror,
    ArtifactMirrorSpec,
    ArtifactMirrorStatus,
    BareMetalHost,
    BareMetalHostSpec,
    BareMetalHostStatus,
    BMCDetails,
    Cluster,
    ClusterSpec,
    ClusterStatus,
    Condition,
    GracefulRebootRequest,
    GracefulRebootRequestSpec,
    GracefulRebootRequestStatus,
    HealthCheckTarget,
    Machine,
    MachineHealthCheck,
    MachineHealthCheckSpec,
    MachineHealthCheckStatus,
    MachinePool,
    MachinePoolSpec,
    MachinePoolStatus,
    MachineSpec,
    MachineStatus,
    ObjectMeta,
    OpenStackAuth,
    OpenStackCredential,
    OpenStackCredentialSpec,
    RebootTarget,
    Region,
    RegionStatus,
    Resource,
    Status,
    VsphereCredential,
    VsphereCredentialSpec,
)

NS = "team-a"


def c(type_: str, status: str, reason: str = "") -> Condition:
    return Condition(type=type_, status=status, reason=reason)  # type: ignore[arg-type]


def md(name: str, ns: str | None = NS) -> ObjectMeta:
    return ObjectMeta(name=name, namespace=ns)


def cluster(name: str, phase: str, ready: str) -> Cluster:
    return Cluster(metadata=md(name), spec=ClusterSpec(region="dc1", provider="baremetal",
                                                       release="mke-3-7-0"),
                   status=ClusterStatus(phase=phase, conditions=[c("Ready", ready, phase)]))


def machine(name: str, cluster_name: str, phase: str, *conds: Condition) -> Machine:
    return Machine(metadata=md(name), spec=MachineSpec(cluster=cluster_name, region="dc1"),
                   status=MachineStatus(phase=phase, conditions=list(conds)))


def host(name: str, reachable: str, reason: str) -> BareMetalHost:
    return BareMetalHost(
        metadata=md(name), spec=BareMetalHostSpec(
            region="dc1", bmc=BMCDetails(address=f"redfish://{name}/redfish/v1/Systems/1"),
            boot_mac_address="52:54:00:00:00:01"),
        status=BareMetalHostStatus(conditions=[c("BMCReachable", reachable, reason),
                                               c("Ready", reachable, reason)]))


def mhc(name: str, cluster_name: str, allowed: str | None, expected: int, healthy: int,
        *targets: tuple[str, str]) -> MachineHealthCheck:
    """A check as LCM writes it: ``allowed`` its RemediationAllowed status (None: not
    counted yet, no condition), ``targets`` (machine, state)."""
    conds = [] if allowed is None else [c("RemediationAllowed", allowed,
                                          "Allowed" if allowed == "True" else "TooManyUnhealthy")]
    return MachineHealthCheck(
        metadata=md(name), spec=MachineHealthCheckSpec(cluster=cluster_name, region="dc1"),
        status=MachineHealthCheckStatus(
            expected_machines=expected, current_healthy=healthy,
            remediations_allowed=int(allowed == "True"), conditions=conds,
            targets=[HealthCheckTarget(machine=m, state=st,  # type: ignore[arg-type]
                                       attempts=2 if st == "Failed" else 1)
                     for m, st in targets]))


def pool(name: str, cluster_name: str, desired: int, ready: int) -> MachinePool:
    return MachinePool(metadata=md(name), spec=MachinePoolSpec(
        cluster=cluster_name, region="dc1", replicas=desired), status=MachinePoolStatus(
        replicas=desired, ready_replicas=ready, updated_replicas=desired))


def reboot(cluster_name: str, *targets: tuple[str, str]) -> GracefulRebootRequest:
    return GracefulRebootRequest(
        metadata=md(cluster_name), spec=GracefulRebootRequestSpec(region="dc1"),
        status=GracefulRebootRequestStatus(targets=[
            RebootTarget(machine=m, state=s) for m, s in targets]))  # type: ignore[arg-type]


def objects() -> dict[type[Resource], list[Any]]:
    ok = (c("ProviderReady", "True", "NodeRunning"), c("Ready", "True", "Ready"))
    return {
        Region: [
            Region(metadata=md("dc1", None), status=RegionStatus(
                phase="Degraded", services_down=["lcm", "release"],
                conditions=[c("Ready", "False", "ServicesDown")])),
            Region(metadata=md("dc2", None), status=RegionStatus(
                phase="Ready", conditions=[c("Ready", "True", "Running")])),
        ],
        Cluster: [cluster("prod", "Degraded", "False"), cluster("fine", "Ready", "True"),
                  cluster("held", "Maintenance", "False")],
        Machine: [
            machine("prod-cp-0", "prod", "Running", *ok),
            machine("prod-w-0", "prod", "Provisioning", c("ProviderReady", "False", "NoCapacity"),
                    c("Ready", "False", "NoCapacity")),
            machine("prod-w-1", "prod", ""),  # just created: no conditions yet
            machine("held-w-0", "held", "Maintenance", c("Maintenance", "True", "Drained"),
                    c("Ready", "False", "Maintenance")),
        ],
        BareMetalHost: [host("bm-0", "False", "ConnectionRefused"),
                        host("bm-1", "True", "Connected")],
        ArtifactMirror: [
            ArtifactMirror(metadata=md("mke"), spec=ArtifactMirrorSpec(
                region="dc1", release="mke-3-7-0"), status=ArtifactMirrorStatus(
                items_total=10, items_done=8, failures=[
                    ArtifactFailure(artifact="a.deb", reason="404"),
                    ArtifactFailure(artifact="b.deb", reason="404")])),
            ArtifactMirror(metadata=md("done"), spec=ArtifactMirrorSpec(
                region="dc1", release="mke-3-7-0"), status=ArtifactMirrorStatus(
                items_total=3, items_done=3)),
        ],
        OpenStackCredential: [OpenStackCredential(
            metadata=md("os1"), spec=OpenStackCredentialSpec(
                region="dc1", auth=OpenStackAuth(auth_url="https://keystone.example/v3")),
            status=Status(conditions=[c("Valid", "False", "InvalidCredentials")]))],
        VsphereCredential: [VsphereCredential(
            metadata=md("vc1"), spec=VsphereCredentialSpec(
                region="dc1", server="vc.example", username="u"),
            status=Status(conditions=[c("Valid", "True", "Authenticated")]))],
        MachineHealthCheck: [
            # Too many unhealthy: held; one machine given up on, one being rebooted.
            mhc("prod-nodes", "prod", "False", 3, 1, ("prod-w-0", "Failed"),
                ("prod-w-1", "Rebooting")),
            mhc("fine-nodes", "fine", "True", 3, 2, ("fine-w-0", "Rebooted")),
            mhc("orphan", "gone", None, 0, 0),  # its cluster is gone: nothing counted
        ],
        MachinePool: [pool("prod-pool", "prod", 3, 1), pool("fine-pool", "fine", 2, 2)],
        GracefulRebootRequest: [
            reboot("prod", ("prod-cp-0", "Done"), ("prod-w-0", "Failed"), ("prod-w-1", "Waiting")),
            reboot("fine", ("fine-w-0", "Done"), ("fine-w-1", "Rebooting")),
        ],
    }


class _Cache:
    """What FleetCollector reads: the objects, as an informer cache hands them out."""

    def __init__(self, by_kind: dict[type[Resource], list[Any]]) -> None:
        self.by_kind = by_kind

    def cached_all(self, kind: type[Resource]) -> list[Any]:
        return self.by_kind.get(kind, [])


def exported(replicas: int, fleet: dict[type[Resource], list[Any]] | None = None,
             up: bool = True) -> list[tuple[str, float]]:
    """promtool input series: the collector's output as each gateway replica's target
    (its own instance label, honorLabels keeping the objects' namespace), and `up` for
    the gateway only."""
    registry = CollectorRegistry()
    cache = _Cache(objects() if fleet is None else fleet)
    registry.register(FleetCollector(cache))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    out = []
    for i in range(replicas):
        target = {"job": "cc-api", "instance": f"10.0.0.{i + 1}:9090"}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out.append((_series(s.name, {**s.labels, **target}), s.value))
        if up:
            out.append((_series("up", {**target, "namespace": "ccloud"}), 1.0))
    return out


def timeline(stages: list[tuple[int, list[MachineHealthCheck]]]) -> list[dict[str, str]]:
    """promtool input series for checks whose status changes: each stage (minutes, the
    checks then) exported by the real collector (two replicas), one sample a minute; a
    series the stage does not export has no sample then ('_')."""
    exports = [dict(exported(2, {MachineHealthCheck: checks}, up=False))
               for _, checks in stages]
    names = sorted(set().union(*exports))
    return [{"series": name, "values": " ".join(
        " ".join([f"{e[name]:g}" if name in e else "_"] * minutes)
        for (minutes, _), e in zip(stages, exports, strict=True))} for name in names]


def _series(name: str, labels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


# alert -> what fires: (labels it carries, its value, what its annotations' queries print)
FIRING: dict[str, list[tuple[dict[str, str], float, dict[str, str]]]] = {
    "ClusterNotReady": [({"namespace": NS, "cluster": "prod", "region": "dc1"}, 0,
                         {"phase": "Degraded"})],
    "MachineNotReady": [
        ({"namespace": NS, "cluster": "prod", "machine": "prod-w-0", "role": "worker",
          "region": "dc1"}, 0, {"reason": "NoCapacity"}),
        ({"namespace": NS, "cluster": "prod", "machine": "prod-w-1", "role": "worker",
          "region": "dc1"}, 0, {}),  # no condition to query: the template's else
    ],
    "RegionDegraded": [({"region": "dc1"}, 2, {})],
    "ArtifactMirrorFailing": [({"namespace": NS, "mirror": "mke", "region": "dc1"}, 2, {})],
    "CredentialInvalid": [({"namespace": NS, "kind": "OpenStackCredential",
                            "credential": "os1", "region": "dc1"}, 0, {})],
    "BareMetalHostUnreachable": [({"namespace": NS, "host": "bm-0", "region": "dc1"}, 1,
                                  {"reason": "ConnectionRefused"})],
    # Not fine-nodes (allowed, its target Rebooted), nor orphan (no condition, nothing
    # counted: its remediation_allowed 0 is not a short circuit).
    "MachineRemediationFailed": [({"namespace": NS, "check": "prod-nodes", "cluster": "prod",
                                   "region": "dc1", "machine": "prod-w-0"}, 1, {})],
    "MachineHealthCheckShortCircuited": [({"namespace": NS, "check": "prod-nodes",
                                           "cluster": "prod", "region": "dc1"}, 0, {})],
    "MachinePoolReplicasMismatch": [({"namespace": NS, "pool": "prod-pool", "cluster": "prod",
                                      "region": "dc1"}, 1, {})],
    # Not fine (a machine rebooting is no failure).
    "GracefulRebootFailed": [({"namespace": NS, "cluster": "prod", "region": "dc1"}, 1, {})],
}

_QUERY = re.compile(r'\{\{ with printf .*? \| query \}\}\{\{ \. \| first \| label "(\w+)" \}\}'
                    r"\{\{ else \}\}(.*?)\{\{ end \}\}")


def expand(text: str, labels: dict[str, str], value: float, printed: dict[str, str]) -> str:
    """The annotation as Prometheus expands it for these labels, with ``printed`` standing
    for what each query prints (the else branch where the query finds nothing)."""
    text = _QUERY.sub(lambda m: printed.get(m.group(1), m.group(2)), text)
    text = text.replace("{{ $value }}", f"{value:g}")
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)


def expected(rules: list[dict[str, Any]], eval_time: str,
             firing: dict[str, list[tuple[dict[str, str], float, dict[str, str]]]] | None = None
             ) -> list[dict[str, Any]]:
    """promtool alert_rule_test entries: every fleet alert (or those ``firing`` names),
    with exactly what fires."""
    tests = []
    for rule in rules:
        if firing is not None and rule["alert"] not in firing:
            continue
        fires = (FIRING if firing is None else firing)[rule["alert"]]
        tests.append({"eval_time": eval_time, "alertname": rule["alert"], "exp_alerts": [
            {"exp_labels": {**rule["labels"], **labels},
             "exp_annotations": {k: expand(v, labels, value, printed)
                                 for k, v in rule["annotations"].items()}}
            for labels, value, printed in fires]})
    return tests
