"""The fake kube-apiserver's validating admission webhooks, held to kube-apiserver's.

Tests of the product's webhook rely on ``FakeKubeApiServer`` sending a write made straight
to the Kubernetes API to the webhook as kube-apiserver does, and answering the client as
it does. Here a tiny HTTPS webhook on 127.0.0.1 (a throwaway CA's certificate) judges the
writes the real kubernetes-asyncio client makes to the fake.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from tests.attach.pki import CA
from tests.fakes.kube_apiserver import FakeKubeApiServer

Obj = dict[str, Any]

GROUP, VERSION, KIND, PLURAL = "example.com", "v1", "Widget", "widgets"
NS = "team-a"
HOOK = "widgets.example.com"
TOKEN = "hook-test-token"
SERVICE = {"namespace": "hooks", "name": "widget-hook", "path": "/validate"}
ADMISSION = ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")

Respond = Callable[[web.Request, Obj], Awaitable[web.Response]]


def reply(req: Obj, **response: Any) -> web.Response:
    return web.json_response({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                              "response": {"uid": req["uid"]} | response})


async def allow(_: web.Request, req: Obj) -> web.Response:
    return reply(req, allowed=True)


def deny(**status: Any) -> Respond:
    async def respond(_: web.Request, req: Obj) -> web.Response:
        return reply(req, allowed=False, **({"status": status} if status else {}))

    return respond


class Webhook:
    """The webhook server: keeps every review's request, answers with ``respond``."""

    def __init__(self) -> None:
        self.requests: list[Obj] = []
        self.paths: list[str] = []
        self.respond: Respond = allow
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        review = await request.json()
        assert (review["apiVersion"], review["kind"]) == ("admission.k8s.io/v1",
                                                          "AdmissionReview")
        self.requests.append(review["request"])
        self.paths.append(request.path_qs)
        return await self.respond(request, review["request"])


@pytest.fixture
def ca() -> CA:
    return CA("webhook-ca")


@pytest.fixture
async def webhook(ca: CA, tmp_path: Path) -> AsyncIterator[Webhook]:
    pair = ca.issue("widget-hook", server=True)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/{tail:.*}", hook.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    hook.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield hook
    await runner.cleanup()


@pytest.fixture
async def fake(webhook: Webhook) -> AsyncIterator[FakeKubeApiServer]:
    server = FakeKubeApiServer(token=TOKEN)
    server.register(group=GROUP, version=VERSION, kind=KIND, plural=PLURAL, namespaced=True)
    server.set_service(SERVICE["namespace"], SERVICE["name"], 443, f"127.0.0.1:{webhook.port}")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def api(fake: FakeKubeApiServer, tmp_path: Path) -> AsyncIterator[client.ApiClient]:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(fake.kubeconfig(tmp_path / "kubeconfig")),
                                  client_configuration=cfg)
    async with client.ApiClient(configuration=cfg) as c:
        yield c


@pytest.fixture
def objects(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


@pytest.fixture
def admission(api: client.ApiClient) -> client.AdmissionregistrationV1Api:
    return client.AdmissionregistrationV1Api(api)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port where nothing listens: bound and never listening, so connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def b64(pem: bytes) -> str:
    return base64.b64encode(pem).decode()


def configuration(
    ca: CA, *, name: str = "widgets", rule: Obj | None = None, **hook: Any
) -> Obj:
    rules = {"apiGroups": [GROUP], "apiVersions": ["*"],
             "operations": ["CREATE", "UPDATE", "DELETE"], "resources": [PLURAL],
             "scope": "Namespaced"} | (rule or {})
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": HOOK,
            "clientConfig": {"service": dict(SERVICE), "caBundle": b64(ca.pem)},
            "rules": [rules], "failurePolicy": "Fail", "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        } | hook],
    }


def widget(name: str, labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    meta: Obj = {"name": name} | ({"labels": labels} if labels else {})
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": meta,
            "spec": spec or {"size": 1}}


async def refused(call: Awaitable[Any]) -> tuple[int, Obj]:
    with pytest.raises(ApiException) as info:
        await call
    return info.value.status, json.loads(info.value.body)


async def create(objects: client.CustomObjectsApi, obj: Obj) -> Obj:
    return await objects.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, obj)


async def get(objects: client.CustomObjectsApi, name: str) -> Obj:
    return await objects.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)


async def install(admission: client.AdmissionregistrationV1Api, cfg: Obj) -> None:
    await admission.create_validating_webhook_configuration(cfg)


async def test_configurations_are_served_defaulted_and_not_admitted(
    fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api,
) -> None:
    everything = {"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"],
                  "resources": ["*/*"], "scope": "*"}
    webhook.respond = deny(message="no")
    await install(admission, configuration(ca, rule=everything))
    await install(admission, configuration(ca, name="second", rule=everything))
    stored = await admission.read_validating_webhook_configuration("widgets")
    hook = stored.webhooks[0]
    assert (hook.timeout_seconds, hook.match_policy, hook.client_config.service.port) == (
        10, "Equivalent", 443)
    names = [c.metadata.name for c in
             (await admission.list_validating_webhook_configuration()).items]
    assert names == ["second", "widgets"]
    await admission.delete_validating_webhook_configuration("second")
    assert webhook.requests == [] and fake.webhook_calls == [], "configurations are not admitted"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s, \
            s.get(f"{fake.url}/apis/admissionregistration.k8s.io/v1") as resp:
        listing = await resp.json()
    assert "validatingwebhookconfigurations" in {r["name"] for r in listing["resources"]}


async def test_denied_create_stores_nothing(
    fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    await install(admission, configuration(ca))
    since = fake.resource_version
    webhook.respond = deny(code=422, reason="Invalid", message="spec.size is too large")
    status, body = await refused(create(objects, widget("big", size=99)))
    assert status == 422
    assert body["message"] == (
        f'admission webhook "{HOOK}" denied the request: spec.size is too large')
    assert (body["kind"], body["status"], body["reason"], body["code"]) == (
        "Status", "Failure", "Invalid", 422)
    status, _ = await refused(get(objects, "big"))
    assert status == 404
    webhook.respond = allow
    await create(objects, widget("small"))
    # The watch from before the denial sees the allowed create first: no event was recorded.
    url = f"{fake.url}/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s, \
            s.get(url, params={"watch": "true", "resourceVersion": str(since)}) as resp:
        first = json.loads(await resp.content.readline())
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "small")
    assert fake.webhook_calls == [(HOOK, "CREATE"), (HOOK, "CREATE")]


@pytest.mark.parametrize("reach", ["service", "url"])
async def test_allowed_create_is_reviewed_then_stored(
    reach: str, fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    cc: Obj = {"caBundle": b64(ca.pem)}
    if reach == "url":
        cc["url"] = f"https://127.0.0.1:{webhook.port}/validate"
    else:
        cc["service"] = dict(SERVICE)
    await install(admission, configuration(ca, clientConfig=cc))
    created = await create(objects, widget("w1", size=3))
    assert created == await get(objects, "w1")
    [req] = webhook.requests
    assert webhook.paths == ["/validate?timeout=10s"]
    uuid.UUID(req["uid"])
    gvk = {"group": GROUP, "version": VERSION, "kind": KIND}
    gvr = {"group": GROUP, "version": VERSION, "resource": PLURAL}
    assert (req["kind"], req["resource"], req["requestKind"], req["requestResource"]) == (
        gvk, gvr, gvk, gvr)
    assert (req["name"], req["namespace"], req["operation"]) == ("w1", NS, "CREATE")
    assert req["userInfo"]["username"] == "system:serviceaccount:fake:token"
    assert "subResource" not in req
    assert (req["dryRun"], req["oldObject"]) == (False, None)
    assert req["options"] == {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
    obj = req["object"]
    assert obj["spec"] == {"size": 3}
    for server_set in ("uid", "generation", "creationTimestamp"):
        assert obj["metadata"][server_set] == created["metadata"][server_set]
    assert "resourceVersion" not in obj["metadata"], "kube assigns it when storing"
    assert fake.webhook_calls == [(HOOK, "CREATE")]


async def test_update_carries_object_and_old_object(
    fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    await install(admission, configuration(ca))
    old = await create(objects, widget("w1", size=1))
    new = json.loads(json.dumps(old))
    new["spec"]["size"] = 2
    replaced = await objects.replace_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "w1", new)
    req = webhook.requests[-1]
    assert req["operation"] == "UPDATE"
    assert req["options"]["kind"] == "UpdateOptions"
    assert (req["oldObject"]["spec"], req["object"]["spec"]) == ({"size": 1}, {"size": 2})
    assert req["object"]["metadata"]["generation"] == 2
    assert req["oldObject"] == old
    # A merge patch is an UPDATE too; denied, it changes nothing.
    webhook.respond = deny(code=403, reason="Forbidden", message="size is frozen")
    status, body = await refused(objects.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "w1", {"spec": {"size": 5}},
        _content_type="application/merge-patch+json"))
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == f'admission webhook "{HOOK}" denied the request: size is frozen'
    req = webhook.requests[-1]
    assert (req["operation"], req["oldObject"]["spec"], req["object"]["spec"]) == (
        "UPDATE", {"size": 2}, {"size": 5})
    assert await get(objects, "w1") == replaced
    assert fake.webhook_calls == [(HOOK, "CREATE"), (HOOK, "UPDATE"), (HOOK, "UPDATE")]


async def test_delete_carries_old_object_and_a_denial_keeps_it(
    fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    await install(admission, configuration(ca))
    stored = await create(objects, widget("w1"))
    webhook.respond = deny()
    status, body = await refused(objects.delete_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "w1", body={"propagationPolicy": "Foreground"}))
    # kube-apiserver v1.30 raises a denial's missing code to 400.
    assert status == 400
    assert body["message"] == f'admission webhook "{HOOK}" denied the request without explanation'
    assert "reason" not in body
    req = webhook.requests[-1]
    assert (req["operation"], req["object"], req["oldObject"]) == ("DELETE", None, stored)
    assert req["options"] == {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1",
                              "propagationPolicy": "Foreground"}
    assert await get(objects, "w1") == stored
    webhook.respond = allow
    await objects.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1")
    status, _ = await refused(get(objects, "w1"))
    assert status == 404
    assert fake.webhook_calls == [(HOOK, "CREATE"), (HOOK, "DELETE"), (HOOK, "DELETE")]


@pytest.mark.parametrize("rule", [
    {"operations": ["DELETE"]},
    {"resources": ["gadgets"]},
    {"resources": [f"{PLURAL}/status"]},
    {"apiGroups": ["other.example.com"]},
    {"apiVersions": ["v2"]},
    {"scope": "Cluster"},
], ids=lambda r: json.dumps(r))
async def test_rules_that_do_not_match_do_not_call(
    rule: Obj, fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    await install(admission, configuration(ca, rule=rule))
    webhook.respond = deny(message="should not be asked")
    created = await create(objects, widget("w1"))
    await objects.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "w1", {"spec": {"size": 2}},
        _content_type="application/merge-patch+json")
    if rule != {"operations": ["DELETE"]}:
        await objects.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w1")
    assert created["metadata"]["name"] == "w1"
    assert webhook.requests == [] and fake.webhook_calls == []


async def test_object_selector_picks_the_objects_sent(
    fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    await install(admission, configuration(
        ca, objectSelector={"matchLabels": {"judged": "yes"}}))
    webhook.respond = deny(message="judged")
    await create(objects, widget("plain"))
    status, _ = await refused(create(objects, widget("marked", labels={"judged": "yes"})))
    assert status == 400
    assert [r["name"] for r in webhook.requests] == ["marked"]


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
async def test_a_webhook_that_is_down(
    policy: str, closed_port: int, fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    fake.set_service(SERVICE["namespace"], SERVICE["name"], 443, f"127.0.0.1:{closed_port}")
    await install(admission, configuration(ca, failurePolicy=policy))
    if policy == "Ignore":
        await create(objects, widget("w1"))
        assert (await get(objects, "w1"))["spec"] == {"size": 1}
    else:
        status, body = await refused(create(objects, widget("w1")))
        assert (status, body["reason"]) == (500, "InternalError")
        assert body["message"].startswith(
            f'Internal error occurred: failed calling webhook "{HOOK}": failed to call '
            f'webhook: Post "https://127.0.0.1:{closed_port}/validate?timeout=10s": ')
        status, _ = await refused(get(objects, "w1"))
        assert status == 404
    assert fake.webhook_calls == [(HOOK, "CREATE")]


async def test_an_unmapped_service_is_a_failed_call(
    fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    cc = {"service": SERVICE | {"port": 8443}, "caBundle": b64(ca.pem)}
    await install(admission, configuration(ca, clientConfig=cc))
    status, body = await refused(create(objects, widget("w1")))
    assert status == 500
    assert 'service "widget-hook" in namespace "hooks", port 8443' in body["message"]


async def test_a_wrong_ca_bundle_is_a_failed_call(
    fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    cc = {"service": dict(SERVICE), "caBundle": b64(CA("someone-else").pem)}
    await install(admission, configuration(ca, clientConfig=cc))
    status, body = await refused(create(objects, widget("w1")))
    assert status == 500
    assert "certificate verify failed" in body["message"]
    assert webhook.requests == [], "nothing is sent to an unverified server"


async def test_the_certificate_must_carry_the_server_name(
    fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    """As kube-apiserver, when asked to check the service's DNS name: the test certificate
    is for 127.0.0.1 only."""
    fake.set_service(SERVICE["namespace"], SERVICE["name"], 443, f"127.0.0.1:{webhook.port}",
                     server_name="widget-hook.hooks.svc")
    await install(admission, configuration(ca))
    status, body = await refused(create(objects, widget("w1")))
    assert status == 500
    assert "certificate verify failed" in body["message"]


async def _wrong_uid(_: web.Request, req: Obj) -> web.Response:
    return reply(req | {"uid": str(uuid.uuid4())}, allowed=True)


async def _not_ok(_: web.Request, req: Obj) -> web.Response:
    return web.Response(status=503, text="store unavailable")


async def _not_json(_: web.Request, req: Obj) -> web.Response:
    return web.Response(text="allowed")


async def _old_review(_: web.Request, req: Obj) -> web.Response:
    return web.json_response({"apiVersion": "admission.k8s.io/v1beta1",
                              "kind": "AdmissionReview",
                              "response": {"uid": req["uid"], "allowed": True}})


@pytest.mark.parametrize(("respond", "why"), [
    (_wrong_uid, "received invalid webhook response: expected response.uid="),
    (_not_ok, 'an error on the server ("store unavailable")'),
    (_not_json, "received invalid webhook response: "),
    (_old_review, "expected webhook response of admission.k8s.io/v1"),
], ids=["wrong-uid", "status-503", "not-json", "v1beta1-review"])
async def test_a_bad_reply_is_a_failed_call(
    respond: Respond, why: str, fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    await install(admission, configuration(ca))
    webhook.respond = respond
    status, body = await refused(create(objects, widget("w1")))
    assert (status, body["reason"]) == (500, "InternalError")
    assert why in body["message"]
    status, _ = await refused(get(objects, "w1"))
    assert status == 404


async def test_review_versions_without_v1_are_a_failed_call(
    fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    await install(admission, configuration(ca, admissionReviewVersions=["v1beta1"]))
    status, _ = await refused(create(objects, widget("w1")))
    assert status == 500
    assert webhook.requests == []


async def test_timeout_seconds_bounds_the_call(
    fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    never = asyncio.Event()

    async def hang(_: web.Request, req: Obj) -> web.Response:
        await never.wait()
        return reply(req, allowed=True)

    webhook.respond = hang
    await install(admission, configuration(ca, timeoutSeconds=1))
    try:
        status, body = await refused(create(objects, widget("w1")))
    finally:
        never.set()
    assert status == 500
    assert "context deadline exceeded" in body["message"]
    assert webhook.paths == ["/validate?timeout=1s"]


async def test_status_writes_are_sent_only_when_the_rule_lists_them(
    fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    await install(admission, configuration(ca, rule={"operations": ["UPDATE"]}))
    stored = await create(objects, widget("w1"))
    webhook.respond = deny(message="no status for you")
    stored["status"] = {"phase": "Ready"}
    stored = await objects.replace_namespaced_custom_object_status(
        GROUP, VERSION, NS, PLURAL, "w1", stored)
    assert stored["status"] == {"phase": "Ready"} and webhook.requests == []

    cfg = await admission.read_validating_webhook_configuration("widgets")
    cfg.webhooks[0].rules[0].resources = [f"{PLURAL}/status"]
    await admission.replace_validating_webhook_configuration("widgets", cfg)
    stored["status"] = {"phase": "Failed"}
    status, body = await refused(objects.replace_namespaced_custom_object_status(
        GROUP, VERSION, NS, PLURAL, "w1", stored))
    assert status == 400 and "no status for you" in body["message"]
    [req] = webhook.requests
    assert (req["subResource"], req["requestSubResource"], req["operation"]) == (
        "status", "status", "UPDATE")
    assert (req["oldObject"]["status"], req["object"]["status"]) == (
        {"phase": "Ready"}, {"phase": "Failed"})
    # The main resource is not listed any more.
    await objects.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "w1", {"spec": {"size": 2}},
        _content_type="application/merge-patch+json")
    assert len(webhook.requests) == 1
    assert (await get(objects, "w1"))["status"] == {"phase": "Ready"}


async def test_every_matching_webhook_is_consulted(
    fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    cfg = configuration(ca)
    second = json.loads(json.dumps(cfg["webhooks"][0]))
    second["name"] = "strict.widgets.example.com"
    second["clientConfig"]["service"]["path"] = "/strict"
    cfg["webhooks"].append(second)
    await install(admission, cfg)

    async def strict_denies(request: web.Request, req: Obj) -> web.Response:
        if request.path == "/strict":
            return reply(req, allowed=False, status={"code": 409, "message": "taken"})
        return reply(req, allowed=True)

    webhook.respond = strict_denies
    status, body = await refused(create(objects, widget("w1")))
    assert status == 409
    assert body["message"] == (
        'admission webhook "strict.widgets.example.com" denied the request: taken')
    assert fake.webhook_calls == [(HOOK, "CREATE"), ("strict.widgets.example.com", "CREATE")]
    assert len({r["uid"] for r in webhook.requests}) == 2, "each call has its own uid"


async def test_a_write_that_lands_meanwhile_is_judged_again(
    fake: FakeKubeApiServer, webhook: Webhook, ca: CA,
    admission: client.AdmissionregistrationV1Api, objects: client.CustomObjectsApi,
) -> None:
    """A patch waits on the webhook while a status write lands: the webhook is asked again
    about the patch on the new state, and the patch applies to it."""
    await install(admission, configuration(ca, rule={"operations": ["UPDATE"]}))
    stored = await create(objects, widget("w1"))
    arrived, release = asyncio.Event(), asyncio.Event()

    async def hold_first(_: web.Request, req: Obj) -> web.Response:
        if len(webhook.requests) == 1:
            arrived.set()
            await release.wait()
        return reply(req, allowed=True)

    webhook.respond = hold_first
    patch = asyncio.create_task(objects.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "w1", {"spec": {"size": 7}},
        _content_type="application/merge-patch+json"))
    try:
        await asyncio.wait_for(arrived.wait(), 10)
        stored["status"] = {"phase": "Ready"}
        await objects.replace_namespaced_custom_object_status(
            GROUP, VERSION, NS, PLURAL, "w1", stored)
    finally:
        release.set()
    patched = await patch
    assert (patched["spec"], patched["status"]) == ({"size": 7}, {"phase": "Ready"})
    first, again = webhook.requests
    assert "status" not in first["oldObject"]
    assert again["oldObject"]["status"] == {"phase": "Ready"}
    assert again["object"]["spec"] == {"size": 7}


async def test_match_conditions_are_refused(
    fake: FakeKubeApiServer, ca: CA, api: client.ApiClient,
    admission: client.AdmissionregistrationV1Api,
) -> None:
    conditions = [{"name": "not-system", "expression": "!request.userInfo.username"
                                                       ".startsWith('system:')"}]
    status, body = await refused(install(admission, configuration(
        ca, matchConditions=conditions)))
    assert (status, body["reason"]) == (422, "Invalid")
    assert "webhooks[0].matchConditions" in body["message"]
    assert "does not evaluate CEL" in body["message"]
    assert (await admission.list_validating_webhook_configuration()).items == []
    # Nor can an update add them.
    await install(admission, configuration(ca))
    cfg = await admission.read_validating_webhook_configuration("widgets")
    raw = api.sanitize_for_serialization(cfg)
    raw["webhooks"][0]["matchConditions"] = conditions
    status, _ = await refused(admission.replace_validating_webhook_configuration(
        "widgets", raw))
    assert status == 422


async def test_a_plain_http_url_is_refused(
    fake: FakeKubeApiServer, ca: CA, admission: client.AdmissionregistrationV1Api,
) -> None:
    cc = {"url": "http://127.0.0.1:9443/validate"}
    status, body = await refused(install(admission, configuration(ca, clientConfig=cc)))
    assert status == 422
    assert "'https' is the only allowed URL scheme" in body["message"]
