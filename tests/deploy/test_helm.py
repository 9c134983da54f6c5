"""Every chart linted by the real Helm library and installed by it into a fake API server
that validates each object against the Kubernetes schemas (tests/fakes/kube_cluster.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography import x509

from services.api import webhook
from services.api.auth import Authenticator, user_entry
from services.backup import __main__ as backup_main
from tests.deploy import code, helm
from tests.deploy.test_manifest import MANIFEST, SERVICES, generate, landed, require_landed
from tests.fakes.kube_cluster import FakeKubeCluster, validate

LINTED = ["ccloud-lib", "nats", *MANIFEST.services, "container-cloud"]
NS = "ccloud"


class Runs:
    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}
        self.clusters: dict[str, FakeKubeCluster] = {}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    why = helm.helm_available()
    if why:
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("helm")
    kube = tmp / "kube.yaml"
    kube.write_text(yaml.safe_dump({"global": {"store": "kube"}}))
    broken = tmp / "broken"
    shutil.copytree(helm.CHARTS / "api", broken, symlinks=False)
    (broken / "templates" / "oops.yaml").write_text("{{ .Values.nope.deeper | required }}\n")
    invalid = tmp / "invalid"
    shutil.copytree(helm.CHARTS / "nats", invalid, symlinks=False)
    (invalid / "values.yaml").write_text(
        (invalid / "values.yaml").read_text().replace("replicas: 1", 'replicas: "three"'))
    standalone = tmp / "standalone.yaml"
    standalone.write_text(yaml.safe_dump(
        {"global": {"store": "kube", "natsUrl": "nats://nats.example:4222"}}))
    own_users = tmp / "umbrella-own-users.yaml"
    own_users.write_text(yaml.safe_dump({"api": {
        "auth": {"existingSecret": "team-users"},
        "ingress": {"enabled": True, "host": "ccloud.example.com"}},
        # What outside clients reach: the agents on a load balancer, config drives on a
        # node port; the mirror left to route by hand.
        "lcm": {"expose": {"enabled": True, "loadBalancerIP": "192.0.2.40"}},
        "provider-baremetal": {"expose": {"enabled": True, "type": "NodePort",
                                          "ports": ["media"], "nodePorts": {"media": 30436}}}}))
    cert_manager = tmp / "cert-manager.yaml"
    cert_manager.write_text(yaml.safe_dump(
        {"global": {"certManager": {"issuer": {"name": "ccloud-ca", "kind": "ClusterIssuer"}}}}))
    backups = tmp / "backup.yaml"
    backups.write_text(yaml.safe_dump({"backup": {"enabled": True, "keep": 12}}))
    mgmt = str(helm.UMBRELLA / "values-management.yaml")
    regional = str(helm.UMBRELLA / "values-regional.yaml")
    leaf = tmp / "leaf.yaml"  # values-regional.yaml leaves the per-region hub URL to set
    leaf.write_text(yaml.safe_dump({"nats": {"managementLeafURL": "nats-leaf://mgmt:7422"}}))
    installs = {
        "mgmt-kv": (helm.UMBRELLA, [mgmt, str(backups)]),
        "backup-kube": (helm.UMBRELLA, [mgmt, str(kube), str(backups)]),
        "mgmt-own-users": (helm.UMBRELLA, [mgmt, str(own_users)]),
        "mgmt-cert-manager": (helm.UMBRELLA, [mgmt, str(kube), str(cert_manager)]),
        "mgmt-kube": (helm.UMBRELLA, [mgmt, str(kube)]),
        "regional-kube": (helm.UMBRELLA, [regional, str(leaf), str(kube)]),
        "invalid": (invalid, []),
    }
    jobs: list[dict[str, Any]] = [{"action": "lint", "chart": str(helm.CHARTS / c), "id": c}
                                  for c in LINTED]
    jobs.append({"action": "lint", "chart": str(broken), "id": "broken"})
    out = Runs()
    with helm.clusters() as ct:
        for name, (chart, values) in installs.items():
            out.clusters[name] = ct.new(tmp / f"{name}.kubeconfig")
            if name == "mgmt-cert-manager":
                helm.install_crd(out.clusters[name].url, "cert-manager.io", "Certificate",
                                 "certificates")  # cert-manager installed
            jobs.append({"action": "install", "chart": str(chart), "id": name, "release": "cc",
                         "namespace": NS, "kubeconfig": str(tmp / f"{name}.kubeconfig"),
                         "values_files": values})
        out.clusters["standalone"] = ct.new(tmp / "standalone.kubeconfig")
        # An upgrade's view: the webhook's certificate Secret already there (as an earlier
        # install of the release left it); the chart must reuse it, not make a new pair.
        out.clusters["reuse"] = ct.new(tmp / "reuse.kubeconfig")
        seed_secret(out.clusters["reuse"].url, "r-api-webhook-tls", EARLIER_TLS,
                    "kubernetes.io/tls")
        seed_secret(out.clusters["reuse"].url, "r-api-auth", EARLIER_USERS)
        seed_secret(out.clusters["reuse"].url, "r-lcm-secrets", EARLIER_LCM)
        jobs.append({"action": "install", "chart": str(helm.CHARTS / "lcm"), "id": "reuse-lcm",
                     "release": "r", "namespace": NS, "kubeconfig": str(tmp / "reuse.kubeconfig"),
                     "values_files": [str(standalone)]})
        exposed = tmp / "ingress.yaml"
        exposed.write_text(yaml.safe_dump({"ingress": {
            "enabled": True, "host": "ccloud.example.com", "tlsSecret": "ccloud-example-tls",
            "className": "nginx",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"}}}))
        nameless = tmp / "ingress-no-host.yaml"
        nameless.write_text(yaml.safe_dump({"ingress": {"enabled": True}}))
        for job, values in (("ingress", exposed), ("ingress-no-host", nameless)):
            jobs.append({"action": "install", "chart": str(helm.CHARTS / "api"), "id": job,
                         "release": job[:3] if job == "ingress" else "nh", "namespace": NS,
                         "kubeconfig": str(tmp / "reuse.kubeconfig"),
                         "values_files": [str(standalone), str(values)]})
        own = tmp / "own-users.yaml"
        own.write_text(yaml.safe_dump({"auth": {"existingSecret": "team-users"}}))
        jobs.append({"action": "install", "chart": str(helm.CHARTS / "api"), "id": "own-users",
                     "release": "o", "namespace": NS, "kubeconfig": str(tmp / "reuse.kubeconfig"),
                     "values_files": [str(own)]})
        jobs.append({"action": "install", "chart": str(helm.CHARTS / "api"), "id": "reuse",
                     "release": "r", "namespace": NS, "kubeconfig": str(tmp / "reuse.kubeconfig"),
                     "values_files": [str(standalone)]})
        for svc in MANIFEST.services:
            jobs.append({"action": "install", "chart": str(helm.CHARTS / svc),
                         "id": f"standalone-{svc}", "release": f"s-{svc}", "namespace": NS,
                         "kubeconfig": str(tmp / "standalone.kubeconfig"),
                         "values_files": [str(standalone)]})
        results = helm.run_helm(jobs)
        out.results = {j["id"]: r for j, r in zip(jobs, results, strict=True)}
        yield out


EARLIER_TLS = {"ca.crt": "ZWFybGllci1jYQ==", "tls.crt": "ZWFybGllci1jZXJ0",
               "tls.key": "ZWFybGllci1rZXk="}


EARLIER_USERS = {
    "tokens.yaml": base64.b64encode(yaml.safe_dump({"users": [
        user_entry("admin", "earlier-admin-token", operator=True),
        user_entry("ada", "ada-token", roles={"team-a": "admin"})]}).encode()).decode(),
    "admin-token": base64.b64encode(b"earlier-admin-token").decode(),
}


EARLIER_LCM = {"agent-secret": base64.b64encode(b"e" * 64).decode()}


def seed_secret(url: str, name: str, data: dict[str, str], type_: str = "Opaque") -> None:
    """A Secret as an earlier install of release r left it (Helm's ownership marks)."""
    secret = {"apiVersion": "v1", "kind": "Secret", "type": type_, "data": data,
              "metadata": {"name": name, "namespace": NS,
                           "labels": {"app.kubernetes.io/managed-by": "Helm"},
                           "annotations": {"meta.helm.sh/release-name": "r",
                                           "meta.helm.sh/release-namespace": NS}}}
    req = urllib.request.Request(f"{url}/api/v1/namespaces/{NS}/secrets", method="POST",
                                 data=json.dumps(secret).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 201


def env_of(container: dict[str, Any]) -> dict[str, str]:
    """A container's environment; a value from a Secret reads ``secret:<name>/<key>``."""
    out = {}
    for e in container["env"]:
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        out[e["name"]] = f"secret:{ref['name']}/{ref['key']}" if ref else e["value"]
    return out


def objects(runs: Runs, cluster: str, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in runs.clusters[cluster].objects(kind)}


def installed(runs: Runs, name: str) -> None:
    result = runs.results[name]
    assert result["ok"], result.get("error")
    assert result["result"]["info"]["status"] == "deployed"
    assert runs.clusters[name.split("-standalone")[0]].warnings == []


@pytest.mark.parametrize("chart", LINTED)
def test_chart_lints_clean(runs: Runs, chart: str) -> None:
    result = runs.results[chart]
    assert result["ok"], result.get("error")
    lint = result["result"]
    assert lint["TotalChartsLinted"] == 1
    assert not lint["Errors"]
    assert [m for m in lint["Messages"] if m["Severity"] >= 3] == []


def test_lint_catches_a_broken_template(runs: Runs) -> None:
    result = runs.results["broken"]
    failed = not result["ok"] or result["result"]["Errors"] or any(
        m["Severity"] >= 3 for m in result["result"]["Messages"])
    assert failed, result


def test_schema_invalid_manifest_is_refused(runs: Runs) -> None:
    result = runs.results["invalid"]
    assert not result["ok"]
    assert "StatefulSet" in result["error"] and "replicas" in result["error"]


def test_management_set_installs(runs: Runs) -> None:
    installed(runs, "mgmt-kv")
    expected = {f"cc-{s.name}" for s in SERVICES if "management" in s.sets}
    assert set(objects(runs, "mgmt-kv", "Deployment")) == expected
    assert set(objects(runs, "mgmt-kv", "StatefulSet")) == {"cc-nats"}
    crds = {yaml.safe_load(p.read_text())["metadata"]["name"]
            for p in (helm.UMBRELLA / "crds").glob("*.yaml")}
    assert set(objects(runs, "mgmt-kv", "CustomResourceDefinition")) == crds


def test_regional_set_installs(runs: Runs) -> None:
    installed(runs, "regional-kube")
    deployments = objects(runs, "regional-kube", "Deployment")
    assert set(deployments) == {f"cc-{s.name}" for s in SERVICES if "regional" in s.sets}
    env = {e["name"]: e.get("value") for e in
           deployments["cc-lcm"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CCLOUD_REGION"] == "region-one"


def test_embedded_store_gets_no_api_access(runs: Runs) -> None:
    assert objects(runs, "mgmt-kv", "ClusterRole") == {}
    for sa in objects(runs, "mgmt-kv", "ServiceAccount").values():
        assert sa["automountServiceAccountToken"] is False
    for d in objects(runs, "mgmt-kv", "Deployment").values():
        assert d["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_kube_store_rbac_is_the_manifest(runs: Runs, svc: generate.Service) -> None:
    cluster = "mgmt-kube" if "management" in svc.sets else "regional-kube"
    installed(runs, cluster)
    roles = objects(runs, cluster, "ClusterRole")
    name = f"cc-{svc.name}"
    if not svc.rbac:
        assert name not in roles
        return
    rules = roles[name]["rules"]
    assert all(r["apiGroups"] == [MANIFEST.group] for r in rules)
    granted = {(res, verb) for r in rules for res in r["resources"] for verb in r["verbs"]}
    assert granted == {(res, v) for res, verbs in svc.rbac.items() for v in verbs}
    binding = objects(runs, cluster, "ClusterRoleBinding")[name]
    assert binding["roleRef"]["name"] == name
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NS}]
    deployment = objects(runs, cluster, "Deployment")[name]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == name


@pytest.mark.parametrize("svc", [s for s in SERVICES if "management" in s.sets],
                         ids=lambda s: s.name)
def test_deployment_follows_the_manifest(runs: Runs, svc: generate.Service) -> None:
    installed(runs, "mgmt-kv")
    d = objects(runs, "mgmt-kv", "Deployment")[f"cc-{svc.name}"]
    pod = d["spec"]["template"]
    ann = pod["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true"
    assert ann["prometheus.io/port"] == str(svc.health_port)
    assert ann["prometheus.io/path"] == "/metrics"
    (c,) = pod["spec"]["containers"]
    assert c["args"] == [svc.command]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": svc.health_port}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": svc.health_port}
    ports = {p["containerPort"] for p in c["ports"]}
    assert ports == {svc.health_port, *svc.ports.values()}
    env = env_of(c)
    assert env["CCLOUD_NATS_URL"] == "nats://cc-nats:4222"
    assert env["CCLOUD_STORE"] == "kv"
    assert env["CCLOUD_HEALTH_PORT"] == str(svc.health_port)
    for k, v in svc.env.items():
        assert env[k] == v.replace("{release}", "cc-")
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_rendered_env_is_what_the_code_reads(runs: Runs, svc: generate.Service) -> None:
    """Both ways: the chart sets no setting the code ignores, and every setting whose
    default is a loopback address is set (to something else) for the service reading it."""
    require_landed(svc.module)
    for cluster in ("mgmt-kv", "regional-kube"):
        if ("management" if cluster == "mgmt-kv" else "regional") not in svc.sets:
            continue
        installed(runs, cluster)
        d = objects(runs, cluster, "Deployment")[f"cc-{svc.name}"]
        env = env_of(d["spec"]["template"]["spec"]["containers"][0])
        unknown = set(env) - code.env_read(svc.module)
        assert not unknown, f"{cluster} {svc.name}: sets {sorted(unknown)} the code never reads"
        local = code.unset_loopback(svc.module, env)
        assert not local, f"{cluster} {svc.name}: leaves {local} at a loopback default"


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_service_chart_installs_alone(runs: Runs, svc: generate.Service) -> None:
    result = runs.results[f"standalone-{svc.name}"]
    assert result["ok"], result.get("error")
    assert runs.clusters["standalone"].warnings == []
    d = objects(runs, "standalone", "Deployment")[f"s-{svc.name}-{svc.name}"]
    env = env_of(d["spec"]["template"]["spec"]["containers"][0])
    assert env["CCLOUD_NATS_URL"] == "nats://nats.example:4222"


def test_everything_installed_passes_strict_schemas(runs: Runs) -> None:
    seen = 0
    for cluster in runs.clusters.values():
        for obj in cluster.objects():
            if obj["apiVersion"].startswith((MANIFEST.group, "cert-manager.io/")):
                continue  # custom resources: their CRDs' schemas, not Kubernetes'
            validate(obj, "1.30.0", strict=True)
            seen += 1
    assert seen > 50


def test_fake_cluster_refuses_unknown_fields_when_strict() -> None:
    """The validation the install tests rely on does reject a bad object."""
    from kubernetes_validate import ValidationError

    with pytest.raises(ValidationError):
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
             "spec": {"ports": [{"port": "http"}]}}, "1.30", strict=False)


def test_umbrella_values_name_every_subchart() -> None:
    chart = yaml.safe_load((helm.UMBRELLA / "Chart.yaml").read_text())
    deps = {d["name"]: d for d in chart["dependencies"]}
    assert set(deps) == {"nats", *MANIFEST.services}
    for svc in SERVICES:
        assert sorted(deps[svc.name]["tags"]) == sorted(svc.sets)
        link = helm.UMBRELLA / "charts" / svc.name
        assert link.resolve() == (helm.CHARTS / svc.name).resolve()


def test_crds_folder_is_vendored_untouched() -> None:
    assert not any(Path(p).is_symlink() for p in (helm.UMBRELLA / "crds").iterdir())


def test_kube_store_gateway_serves_its_admission_webhook(runs: Runs) -> None:
    """With the Kubernetes store the chart registers the gateway's webhook with the rules
    the code judges, reachable at the Service port the pod listens on with a certificate
    for the Service's name signed by the CA kube-apiserver is told to trust."""
    installed(runs, "mgmt-kube")
    (hook,) = objects(runs, "mgmt-kube", "ValidatingWebhookConfiguration")["cc-api-ccloud"][
        "webhooks"]
    assert hook["rules"] == webhook.rules(MANIFEST.group)
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    svc = hook["clientConfig"]["service"]
    assert svc == {"name": "cc-api", "namespace": NS, "port": 9443, "path": webhook.PATH}
    ports = {p["name"]: p for p in objects(runs, "mgmt-kube", "Service")["cc-api"]["spec"][
        "ports"]}
    assert ports["webhook"]["port"] == 9443 and ports["webhook"]["targetPort"] == 9443
    pod = objects(runs, "mgmt-kube", "Deployment")["cc-api"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = env_of(c)
    assert env["CCLOUD_WEBHOOK_PORT"] == "9443"
    assert {"CCLOUD_WEBHOOK_PORT", "CCLOUD_WEBHOOK_CERT_DIR"} <= code.env_read("services.api")
    assert {"name": "webhook", "containerPort": 9443} in c["ports"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "webhook-tls")
    assert mount["mountPath"] == env["CCLOUD_WEBHOOK_CERT_DIR"]
    volume = next(v for v in pod["volumes"] if v["name"] == "webhook-tls")
    secret = objects(runs, "mgmt-kube", "Secret")[volume["secret"]["secretName"]]
    assert secret["type"] == "kubernetes.io/tls"
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "cc-api.ccloud.svc" in names.get_values_for_type(x509.DNSName)


def test_an_upgrade_keeps_the_webhook_certificate(runs: Runs) -> None:
    result = runs.results["reuse"]
    assert result["ok"], result.get("error")
    secret = objects(runs, "reuse", "Secret")["r-api-webhook-tls"]
    assert secret["data"] == EARLIER_TLS
    (hook,) = objects(runs, "reuse", "ValidatingWebhookConfiguration")["r-api-ccloud"]["webhooks"]
    assert hook["clientConfig"]["caBundle"] == EARLIER_TLS["ca.crt"]


def test_the_embedded_store_has_no_webhook(runs: Runs) -> None:
    installed(runs, "mgmt-kv")
    assert objects(runs, "mgmt-kv", "ValidatingWebhookConfiguration") == {}
    assert "cc-api-webhook-tls" not in objects(runs, "mgmt-kv", "Secret")
    ports = objects(runs, "mgmt-kv", "Service")["cc-api"]["spec"]["ports"]
    assert "webhook" not in {p["name"] for p in ports}


def test_scheduled_backups_of_the_embedded_store(runs: Runs) -> None:
    """The CronJob runs the backup command from the image's entry point (the first argument
    names the module, the rest must be what its parser takes) onto a kept volume."""
    installed(runs, "mgmt-kv")
    cron = objects(runs, "mgmt-kv", "CronJob")["cc-backup"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    module, *argv = c["args"]
    assert module == "backup" and landed(f"services.{module}")
    args = backup_main.parser().parse_args(argv)
    assert args.backup_command == "backup" and args.keep == 12
    mount = next(m for m in c["volumeMounts"] if m["name"] == "backups")
    assert str(args.dir) == mount["mountPath"]
    env = env_of(c)
    assert env["CCLOUD_NATS_URL"] == "nats://cc-nats:4222"
    assert set(env) <= code.env_read("services.backup")
    claim = pod["volumes"][0]["persistentVolumeClaim"]["claimName"]
    pvc = objects(runs, "mgmt-kv", "PersistentVolumeClaim")[claim]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "CronJob" not in {o["kind"] for o in runs.clusters["mgmt-kube"].objects()}


def test_backups_of_the_kubernetes_store_are_refused_with_a_reason(runs: Runs) -> None:
    result = runs.results["backup-kube"]
    assert not result["ok"]
    assert "backup.enabled needs global.store=kv" in result["error"]


def users_of(secret: dict[str, Any]) -> Authenticator:
    doc = yaml.safe_load(base64.b64decode(secret["data"]["tokens.yaml"]))
    return Authenticator.from_dict(doc, source=secret["metadata"]["name"])


@pytest.mark.parametrize("cluster", ["mgmt-kv", "mgmt-kube"])
def test_the_gateways_users_come_from_a_secret(runs: Runs, cluster: str) -> None:
    """Not from its data folder (an emptyDir: a new admin token on every restart, another
    per replica): a Secret the chart makes with an operator whose token it holds."""
    installed(runs, cluster)
    pod = objects(runs, cluster, "Deployment")["cc-api"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = env_of(c)
    mount = next(m for m in c["volumeMounts"] if m["name"] == "auth")
    assert env["CCLOUD_TOKENS_FILE"] == f"{mount['mountPath']}/tokens.yaml"
    assert "CCLOUD_TOKENS_FILE" in code.env_read("services.api")
    volume = next(v for v in pod["volumes"] if v["name"] == "auth")
    secret = objects(runs, cluster, "Secret")[volume["secret"]["secretName"]]
    token = base64.b64decode(secret["data"]["admin-token"]).decode()
    assert len(token) >= 40
    admin = asyncio.run(users_of(secret).authenticate(token))
    assert admin is not None and admin.name == "admin" and admin.operator
    assert token not in base64.b64decode(secret["data"]["tokens.yaml"]).decode()


def test_an_upgrade_keeps_the_gateways_users(runs: Runs) -> None:
    result = runs.results["reuse"]
    assert result["ok"], result.get("error")
    secret = objects(runs, "reuse", "Secret")["r-api-auth"]
    assert secret["data"] == EARLIER_USERS
    ada = asyncio.run(users_of(secret).authenticate("ada-token"))
    assert ada is not None and ada.roles == {"team-a": "admin"}


def test_users_from_a_secret_of_ones_own(runs: Runs) -> None:
    result = runs.results["own-users"]
    assert result["ok"], result.get("error")
    assert "o-api-auth" not in objects(runs, "reuse", "Secret")
    pod = objects(runs, "reuse", "Deployment")["o-api"]["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "auth")
    assert volume["secret"]["secretName"] == "team-users"


def test_what_services_keep_survives_restarts_and_upgrades(runs: Runs) -> None:
    """LCM's agent secret comes from a Secret the chart made (not the data folder, an
    emptyDir: a restart would turn away every agent); the release service's data folder,
    the region's mirror, is a volume kept on uninstall."""
    installed(runs, "mgmt-kv")
    lcm = objects(runs, "mgmt-kv", "Deployment")["cc-lcm"]["spec"]["template"]["spec"]
    env = env_of(lcm["containers"][0])
    assert env["CCLOUD_LCM_SECRET"] == "secret:cc-lcm-secrets/agent-secret"
    assert "CCLOUD_LCM_SECRET" in code.env_read("services.lcm")
    made = objects(runs, "mgmt-kv", "Secret")["cc-lcm-secrets"]
    assert len(base64.b64decode(made["data"]["agent-secret"])) == 64

    release = objects(runs, "mgmt-kv", "Deployment")["cc-release"]
    assert release["spec"]["strategy"] == {"type": "Recreate"}
    volume = next(v for v in release["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "data")
    pvc = objects(runs, "mgmt-kv", "PersistentVolumeClaim")[
        volume["persistentVolumeClaim"]["claimName"]]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"
    others = objects(runs, "mgmt-kv", "Deployment")["cc-bridge"]["spec"]["template"]["spec"]
    assert next(v for v in others["volumes"] if v["name"] == "data") == {
        "name": "data", "emptyDir": {}}

    result = runs.results["reuse-lcm"]
    assert result["ok"], result.get("error")
    assert objects(runs, "reuse", "Secret")["r-lcm-secrets"]["data"] == EARLIER_LCM


@pytest.mark.parametrize("provider",
                         ["provider-openstack", "provider-vsphere", "provider-baremetal"])
def test_cloud_providers_sign_node_tokens_with_lcms_secret(runs: Runs, provider: str) -> None:
    """Their nodes' cloud-init (bare metal: on a config drive) carries a token LCM must
    accept (both read the one Secret) and the CA LCM's HTTPS certificate - made for the
    address in the endpoint - chains to."""
    for cluster in ("mgmt-kv", "regional-kube"):
        installed(runs, cluster)
        deployments = objects(runs, cluster, "Deployment")
        pod = deployments["cc-lcm"]["spec"]["template"]["spec"]
        lcm = env_of(pod["containers"][0])
        env = env_of(deployments[f"cc-{provider}"]["spec"]["template"]["spec"]["containers"][0])
        assert env["CCLOUD_LCM_SECRET"] == lcm["CCLOUD_LCM_SECRET"] == \
            "secret:cc-lcm-secrets/agent-secret"
        assert env["CCLOUD_AGENT_ENDPOINT"] == f"https://cc-lcm:{lcm['CCLOUD_LCM_PORT']}"
        assert env["CCLOUD_AGENT_CA"] == "secret:cc-lcm-tls/ca.crt"
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "tls")
        assert lcm["CCLOUD_LCM_TLS_CERT_DIR"] == mount["mountPath"]
        assert "CCLOUD_LCM_TLS_CERT_DIR" in code.env_read("services.lcm")
        volume = next(v for v in pod["volumes"] if v["name"] == "tls")
        secret = objects(runs, cluster, "Secret")[volume["secret"]["secretName"]]
        ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
        cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {"cc-lcm", "cc-lcm.ccloud.svc"} <= set(names.get_values_for_type(x509.DNSName))


def test_install_notes_say_how_to_reach_and_sign_in(runs: Runs) -> None:
    """What an operator needs right after `helm install`: the API, the admin token's Secret
    (the one the gateway mounts), what must be reached from outside (LCM's agents port and
    the mirror by the nodes, the config drives by the BMCs) and how: the Services
    `<service>.expose` rendered, or the value to set; monitoring only when it is on."""
    installed(runs, "mgmt-kube")
    notes = runs.results["mgmt-kube"]["result"]["info"]["notes"]
    pod = objects(runs, "mgmt-kube", "Deployment")["cc-api"]["spec"]["template"]["spec"]
    auth = next(v for v in pod["volumes"] if v["name"] == "auth")["secret"]["secretName"]
    assert f"get secret {auth} -o jsonpath='{{.data.admin-token}}'" in notes
    assert "port-forward svc/cc-api 8443:8443" in notes
    assert "lcm.tls.extraNames" in notes and "Backups" not in notes  # kube store
    regional = runs.results["regional-kube"]["result"]["info"]["notes"]
    assert "regional set" in regional and "admin-token" not in regional
    assert "Backups" not in runs.results["mgmt-kv"]["result"]["info"]["notes"]  # enabled there
    installed(runs, "mgmt-own-users")
    own = runs.results["mgmt-own-users"]["result"]["info"]["notes"]
    assert "from your Secret team-users" in own and "admin-token" not in own
    assert "API and console: https://ccloud.example.com/" in own and "port-forward" not in own
    assert "Backups of the management store are off" in own
    assert "cc-api-auth" not in objects(runs, "mgmt-own-users", "Secret")

    # Nothing exposed: each port outside clients need, and the value that exposes it.
    for notes_of in (notes, regional):
        for svc, port, number in (("lcm", "agents", 8430), ("release", "mirror", 8480),
                                  ("provider-baremetal", "media", 8436)):
            assert f"{svc} port {port} ({number})" in notes_of
            assert f"NOT exposed: set {svc}.expose.enabled=true (or route to cc-{svc}:{number}" \
                in notes_of
        assert "Monitoring" not in notes_of  # off by default
    assert "reached by the nodes' agents" in notes and "reached by the BMCs" in notes
    # Exposed: the notes name the Services the chart rendered, and how to find them.
    external = {n: svc["spec"] for n, svc in objects(runs, "mgmt-own-users", "Service").items()
                if n.endswith("-external")}
    assert {n: s["type"] for n, s in external.items()} == {
        "cc-lcm-external": "LoadBalancer", "cc-provider-baremetal-external": "NodePort"}
    assert external["cc-provider-baremetal-external"]["ports"][0]["nodePort"] == 30436
    assert "exposed by LoadBalancer Service cc-lcm-external at 192.0.2.40:" in own
    assert "exposed by NodePort Service cc-provider-baremetal-external on node port 30436:" \
        in own
    for name in external:
        assert f"kubectl -n {NS} get svc {name}" in own
    assert "NOT exposed: set release.expose.enabled=true" in own
    assert "NOT exposed: set lcm." not in own and "NOT exposed: set provider-baremetal." not in own


def test_the_api_behind_an_ingress(runs: Runs) -> None:
    result = runs.results["ingress"]
    assert result["ok"], result.get("error")
    ingress = objects(runs, "reuse", "Ingress")["ing-api"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["ccloud.example.com"],
                                       "secretName": "ccloud-example-tls"}]
    (rule,) = ingress["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    service = objects(runs, "reuse", "Service")[backend["name"]]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert ingress["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    refused = runs.results["ingress-no-host"]
    assert not refused["ok"] and "ingress.enabled needs ingress.host" in refused["error"]


def test_serving_certificates_from_cert_manager(runs: Runs) -> None:
    """With an issuer named, cert-manager issues (and renews) the webhook's and LCM's
    certificates into the Secrets the pods mount, and its cainjector fills the webhook's
    caBundle; Helm makes none of them."""
    installed(runs, "mgmt-cert-manager")
    certs = objects(runs, "mgmt-cert-manager", "Certificate")
    assert set(certs) == {"cc-api-webhook-tls", "cc-lcm-tls"}
    for name, cert in certs.items():
        assert cert["spec"]["secretName"] == name
        assert cert["spec"]["issuerRef"] == {"name": "ccloud-ca", "kind": "ClusterIssuer",
                                             "group": "cert-manager.io"}
    assert "cc-lcm.ccloud.svc" in certs["cc-lcm-tls"]["spec"]["dnsNames"]
    assert certs["cc-api-webhook-tls"]["spec"]["dnsNames"][0] == "cc-api.ccloud.svc"
    assert not set(certs) & set(objects(runs, "mgmt-cert-manager", "Secret"))
    vwc = objects(runs, "mgmt-cert-manager", "ValidatingWebhookConfiguration")["cc-api-ccloud"]
    assert vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
        "ccloud/cc-api-webhook-tls"
    assert "caBundle" not in vwc["webhooks"][0]["clientConfig"]
