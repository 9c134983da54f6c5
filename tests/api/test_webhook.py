"""The admission webhook answers kube-apiserver's reviews over HTTPS as the gateway answers
its own writes: the same checks, codes and messages; reviews it cannot read are a 400."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.api import __main__ as api_main
from services.api import webhook
from shared import tls
from shared.models import GROUP, VERSION, Cluster, Machine, Region, convert, to_dict
from shared.store.kv import KVStore
from tests.api.conftest import cluster, machine, region
from tests.attach.pki import CA, cert_dir
from tests.waiting import eventually


class Hook:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    async def post(self, body: Any) -> tuple[int, Any]:
        async with self.session.post(self.url, json=body) as r:
            return r.status, (await r.json() if r.status == 200 else await r.text())

    async def review(self, operation: str, kind: str, *, obj: dict | None = None,
                     old: dict | None = None, name: str = "", namespace: str | None = None,
                     sub: str = "") -> dict[str, Any]:
        """Send a review shaped as kube-apiserver sends it; the response part back."""
        uid = str(uuid.uuid4())
        meta = (obj or old or {}).get("metadata", {})
        request: dict[str, Any] = {
            "uid": uid, "kind": {"group": GROUP, "version": VERSION, "kind": kind},
            "resource": {"group": GROUP, "version": VERSION, "resource": kind.lower() + "s"},
            "name": name or meta.get("name", ""), "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
            "object": obj, "oldObject": old, "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": f"{operation.title()}Options"},
        }
        if namespace or meta.get("namespace"):
            request["namespace"] = namespace or meta["namespace"]
        if sub:
            request["subResource"] = sub
        code, body = await self.post(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
        assert code == 200, body
        assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
        assert body["response"]["uid"] == uid
        return body["response"]


@pytest.fixture
async def hook(kv_store: KVStore, tmp_path: Path) -> AsyncIterator[Hook]:
    ca = CA("webhook-ca")
    listener = await webhook.serve(kv_store, "127.0.0.1", 0,
                                   tls.ServingCert(cert_dir(ca, tmp_path / "certs")))
    trust = ssl.create_default_context(cadata=ca.pem.decode())
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as session:
        yield Hook(f"https://127.0.0.1:{listener.port}{webhook.PATH}", session)
    await listener.stop()


def stored(obj: Any) -> dict[str, Any]:
    """An object as kube-apiserver puts it in a review (server fields included)."""
    out = to_dict(obj)
    out["metadata"].setdefault("managedFields", [{"manager": "kubectl", "operation": "Update"}])
    return out


async def test_writes_are_judged_as_the_gateway_judges_them(hook: Hook, kv_store: KVStore):
    await kv_store.create(convert(Region, region()))
    wrong = cluster("c1", provider="openstack", credential="os1")
    answer = await hook.review("CREATE", "Cluster", obj=wrong)
    assert answer["allowed"] is False
    status = answer["status"]
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert "spec.provider: region 'local' offers simulated, not openstack" in status["message"]
    assert status["details"]["causes"][0]["field"] == "spec.provider"

    assert (await hook.review("CREATE", "Cluster", obj=cluster("c1")))["allowed"] is True
    c1 = await kv_store.create(convert(Cluster, cluster("c1")))
    cp = await kv_store.create(convert(Machine, machine("cp-0", "control-plane")))

    # A Machine that does not fit its Cluster, created or changed into it.
    misplaced = machine("w-0", "worker") | {}
    misplaced["spec"] = misplaced["spec"] | {"region": "elsewhere"}
    answer = await hook.review("CREATE", "Machine", obj=misplaced)
    assert answer["allowed"] is False and answer["status"]["code"] == 422
    assert "spec.region" in answer["status"]["message"]
    moved = stored(cp)
    moved["spec"]["region"] = "elsewhere"
    answer = await hook.review("UPDATE", "Machine", obj=moved, old=stored(cp))
    assert answer["allowed"] is False and "spec.region" in answer["status"]["message"]

    # A controller's metadata write (a finalizer) changes nothing judged: allowed.
    held = stored(c1)
    held["metadata"]["finalizers"] = ["kaas.containercloud.dev/lcm"]
    assert (await hook.review("UPDATE", "Cluster", obj=held, old=stored(c1)))["allowed"] is True

    # The last control-plane Machine of a live Cluster stays; with a second one it may go.
    answer = await hook.review("DELETE", "Machine", old=stored(cp))
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 409 and answer["status"]["reason"] == "Conflict"
    assert "last control-plane node of cluster 'c1'" in answer["status"]["message"]
    await kv_store.create(convert(Machine, machine("cp-1", "control-plane")))
    assert (await hook.review("DELETE", "Machine", old=stored(cp)))["allowed"] is True


async def test_maintenance_rules_are_the_gateways(hook: Hook, kv_store: KVStore):
    """kubectl edits of spec.maintenance meet the gateway's rules: a machine only while its
    cluster is in maintenance, the cluster out of it only once its machines are."""
    c1 = await kv_store.create(convert(Cluster, cluster("c1")))
    w0 = await kv_store.create(convert(Machine, machine("w-0", "worker")))
    into = stored(w0)
    into["spec"]["maintenance"] = True
    answer = await hook.review("UPDATE", "Machine", obj=into, old=stored(w0))
    assert answer["allowed"] is False
    status = answer["status"]
    assert (status["code"], status["reason"]) == (409, "Conflict")
    assert status["message"] == ("Machine 'w-0' cannot enter maintenance: cluster 'c1' is not "
                                 "in maintenance; set the Cluster's spec.maintenance first")
    assert status["details"]["causes"][0]["field"] == "spec.maintenance"

    c1.spec.maintenance = True
    c1 = await kv_store.update(c1)
    assert (await hook.review("UPDATE", "Machine", obj=into, old=stored(w0)))["allowed"] is True
    w0.spec.maintenance = True
    await kv_store.update(w0)
    out = stored(c1)
    out["spec"]["maintenance"] = False
    answer = await hook.review("UPDATE", "Cluster", obj=out, old=stored(c1))
    assert answer["allowed"] is False and answer["status"]["code"] == 409
    assert "cannot leave maintenance while its machines are in maintenance (w-0)" in \
        answer["status"]["message"]


async def test_what_is_not_judged_is_allowed(hook: Hook, kv_store: KVStore):
    """Status writes and kinds or operations outside the rules pass unjudged (a
    configuration wider than RULES must not block controllers)."""
    await kv_store.create(convert(Region, region()))
    wrong = cluster("c1", provider="openstack", credential="os1")
    assert (await hook.review("UPDATE", "Cluster", obj=wrong, old=cluster("c1"),
                              sub="status"))["allowed"] is True
    assert (await hook.review("DELETE", "Region", old=region()))["allowed"] is True
    assert (await hook.review("CONNECT", "Cluster", obj=wrong))["allowed"] is True


async def test_an_object_the_models_refuse_is_a_422_naming_the_field(hook: Hook):
    bad = cluster("c1")
    bad["spec"]["provider"] = "mainframe"
    answer = await hook.review("CREATE", "Cluster", obj=bad)
    assert answer["allowed"] is False and answer["status"]["code"] == 422
    assert answer["status"]["details"]["causes"][0]["field"] == "spec.provider"
    assert "Cluster is invalid: spec.provider" in answer["status"]["message"]


async def test_a_health_check_written_with_kubectl_is_judged_too(hook: Hook):
    """kubectl writes skip the gateway, and a bad maxUnhealthy only the model can tell (the
    CRD's schema takes any int-or-string): the webhook refuses it as the gateway does."""
    check = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MachineHealthCheck",
             "metadata": {"name": "hc", "namespace": "team-a"},
             "spec": {"cluster": "c1", "region": "local", "maxUnhealthy": "150%"}}
    assert "machinehealthchecks" in webhook.rules()[0]["resources"]
    answer = await hook.review("CREATE", "MachineHealthCheck", obj=check)
    assert answer["allowed"] is False and answer["status"]["code"] == 422
    assert "maxUnhealthy must be a count" in answer["status"]["message"]
    check["spec"]["maxUnhealthy"] = "40%"
    assert (await hook.review("CREATE", "MachineHealthCheck", obj=check))["allowed"] is True


@pytest.mark.parametrize("body, why", [
    ("not json", "not an AdmissionReview"),
    ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
      "request": {"uid": "u", "kind": {"kind": "Cluster"}, "operation": "CREATE"}},
     "expected admission.k8s.io/v1 AdmissionReview, got admission.k8s.io/v1beta1"),
    ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "carries no request"),
    ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
      "request": {"uid": "u", "kind": {"kind": "Cluster"}, "operation": "PATCH"}},
     "not an AdmissionReview"),
    ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
      "request": {"uid": "u", "kind": {"group": GROUP, "kind": "Cluster"},
                  "operation": "CREATE"}}, "carries no object"),
])
async def test_a_review_that_cannot_be_read_is_a_400(hook: Hook, body: Any, why: str):
    if isinstance(body, str):
        async with hook.session.post(hook.url, data=body) as r:
            code, text = r.status, await r.text()
    else:
        code, text = await hook.post(body)
    if why == "carries no object":  # readable, but the write cannot be judged without it
        assert code == 200 and text["response"]["allowed"] is False
        assert text["response"]["status"]["code"] == 400 and why in text["response"][
            "status"]["message"]
        return
    assert code == 400 and why in text


def test_a_missing_certificate_stops_the_gateway_before_it_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    code = api_main.main(["--data-dir", str(tmp_path), "--nats-url", "nats://127.0.0.1:1",
                          "--webhook-port", "9443", "--webhook-cert-dir", str(tmp_path / "no")])
    assert code == 1
    missing = tmp_path / "no" / "tls.crt"
    assert f"error: TLS certificate: no {missing}" in capsys.readouterr().err


async def handshake(port: int, ca: CA) -> bool:
    """Whether a client trusting only ``ca`` completes a TLS handshake with the listener."""
    trust = ssl.create_default_context(cadata=ca.pem.decode())
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=trust)
    except ssl.SSLError:
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


async def test_a_rotated_certificate_is_served_without_a_restart(kv_store: KVStore,
                                                                 tmp_path: Path):
    """As a renewed Secret reaches the pod: new handshakes get the new certificate; a
    half-swapped pair (new certificate, old key) keeps the previous one serving."""
    first, second = CA("first-ca"), CA("second-ca")
    certs = cert_dir(first, tmp_path / "certs")
    cert = tls.ServingCert(certs, interval=0.05)
    listener = await webhook.serve(kv_store, "127.0.0.1", 0, cert)
    try:
        assert await handshake(listener.port, first)
        assert not cert.reload_if_changed()  # nothing changed

        renewed = second.issue("webhook", server=True)
        (certs / tls.CERT_FILE).write_bytes(renewed.cert_pem)  # the key not yet
        assert not cert.reload_if_changed()
        assert await handshake(listener.port, first)
        (certs / tls.KEY_FILE).write_bytes(renewed.key_pem)
        # The watch picks the pair up by itself.
        await eventually(lambda: handshake(listener.port, second), timeout=10)
        assert not await handshake(listener.port, first)
    finally:
        await listener.stop()
