"""With the Kubernetes store, a write made straight to the Kubernetes API (kubectl, GitOps)
is judged by the gateway's webhook as the gateway judges its own writes.

kube-apiserver is the fake at the HTTP boundary (tests/fakes/kube_apiserver.py), which
calls validating webhooks as the real one does; the webhook is the product's listener
(HTTPS, a certificate for the Service's name) on a KubeStore against the same server, and
the configuration is the one the chart renders (tests/deploy/test_helm.py checks the
chart's rules are ``webhook.rules()``)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from services.api import webhook
from shared import tls
from shared.models import ALL_KINDS, GROUP, VERSION, Cluster, Machine
from shared.store import Conflict, NotFound
from shared.store.kube import KubeStore
from tests.api.conftest import cluster, machine, region
from tests.attach.pki import CA, cert_dir
from tests.fakes.kube_apiserver import FakeKubeApiServer

NS = "team-a"
HOOK = f"validate.{GROUP}"
DENIED = f'admission webhook "{HOOK}" denied the request: '


@dataclass
class Kube:
    server: FakeKubeApiServer
    kubectl: client.CustomObjectsApi
    store: KubeStore

    async def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        ns = body["metadata"].get("namespace")
        if ns:
            return await self.kubectl.create_namespaced_custom_object(
                GROUP, VERSION, ns, plural, body)
        return await self.kubectl.create_cluster_custom_object(GROUP, VERSION, plural, body)

    async def refused(self, call: Any) -> tuple[int, str]:
        with pytest.raises(ApiException) as info:
            await call
        status = json.loads(info.value.body)
        return status["code"], status["message"]


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[Kube]:
    server = FakeKubeApiServer()
    server.register_kinds(ALL_KINDS)
    await server.start()
    store = KubeStore(kubeconfig=server.kubeconfig(tmp_path / "kubeconfig"))
    await store.start()
    ca = CA("cc-api-webhook-ca")
    certs = cert_dir(ca, tmp_path / "certs")
    hook = await webhook.serve(store, "127.0.0.1", 0, tls.ServingCert(certs))
    server.set_service("ccloud", "cc-api", 9443, f"127.0.0.1:{hook.port}")
    cfg = client.Configuration(host=server.url)
    async with client.ApiClient(configuration=cfg) as api:
        await client.AdmissionregistrationV1Api(api).create_validating_webhook_configuration({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "cc-api-ccloud"},
            "webhooks": [{
                "name": HOOK, "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "failurePolicy": "Fail", "timeoutSeconds": 10, "matchPolicy": "Equivalent",
                "clientConfig": {
                    "service": {"name": "cc-api", "namespace": "ccloud", "port": 9443,
                                "path": webhook.PATH},
                    "caBundle": base64.b64encode(ca.pem).decode()},
                "rules": webhook.rules(),
            }],
        })
        yield Kube(server, client.CustomObjectsApi(api), store)
    await hook.stop()
    await store.close()
    await server.stop()


async def test_kubectl_writes_are_judged_by_the_gateways_checks(kube: Kube):
    await kube.create("regions", region())
    code, message = await kube.refused(kube.create(
        "clusters", cluster("c1", provider="openstack", credential="os1")))
    assert code == 422
    assert message.startswith(DENIED + "Cluster 'c1' is invalid: spec.provider: region "
                                        "'local' offers simulated, not openstack")
    with pytest.raises(NotFound):
        await kube.store.get(Cluster, "c1", NS)  # refused: nothing stored

    await kube.create("clusters", cluster("c1"))
    await kube.create("machines", machine("cp-0", "control-plane"))
    code, message = await kube.refused(kube.kubectl.delete_namespaced_custom_object(
        GROUP, VERSION, NS, "machines", "cp-0"))
    assert code == 409
    assert message.startswith(DENIED + "Machine 'cp-0' is the last control-plane node of "
                                        "cluster 'c1'")
    # The system of record's own clients see the refusal as what it is.
    with pytest.raises(Conflict, match="last control-plane node"):
        await kube.store.delete(Machine, "cp-0", NS)
    assert (await kube.store.get(Machine, "cp-0", NS)).metadata.deletion_timestamp is None


async def test_controllers_writes_pass(kube: Kube):
    """A controller's metadata write and its status writes are not refused: the first
    changes nothing judged, the second is not even sent to the webhook."""
    await kube.create("clusters", cluster("c1"))
    ours = await kube.store.get(Cluster, "c1", NS)
    ours.metadata.finalizers = ["kaas.containercloud.dev/lcm"]
    ours = await kube.store.update(ours)
    assert ours.metadata.finalizers == ["kaas.containercloud.dev/lcm"]
    calls = len(kube.server.webhook_calls)
    ours.status.phase = "Provisioning"
    assert (await kube.store.update_status(ours)).status.phase == "Provisioning"
    assert len(kube.server.webhook_calls) == calls
