"""Every status code path of the REST surface, with Kubernetes Status bodies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from nats.aio.client import Client as NATS

from services.api import create_app
from services.api.auth import Authenticator
from shared.models import Cluster
from shared.store import NotFound
from shared.store.kv import KVStore
from tests.api.conftest import BASE, TOKENS, Gateway, cluster, ns_path, region, users_doc
from tests.waiting import eventually


def assert_status(body: dict, code: int, reason: str) -> None:
    assert body["kind"] == "Status", body
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason


async def test_create_get_list_201_200(gateway: Gateway) -> None:
    code, body = await gateway.call("POST", ns_path("clusters"), json=cluster())
    assert code == 201, body
    assert body["metadata"]["uid"] and body["metadata"]["resourceVersion"]
    assert body["metadata"]["generation"] == 1
    code, got = await gateway.call("GET", ns_path("clusters", name="c1"))
    assert code == 200 and got["metadata"]["uid"] == body["metadata"]["uid"]
    code, lst = await gateway.call("GET", ns_path("clusters"))
    assert code == 200 and lst["kind"] == "ClusterList"
    assert [i["metadata"]["name"] for i in lst["items"]] == ["c1"]
    assert lst["metadata"]["resourceVersion"]


async def test_namespace_filled_from_url(gateway: Gateway) -> None:
    body = cluster()
    del body["metadata"]["namespace"]
    code, out = await gateway.call("POST", ns_path("clusters"), json=body)
    assert code == 201 and out["metadata"]["namespace"] == "team-a"


async def test_list_label_selector_limit_continue(gateway: Gateway) -> None:
    for i in range(5):
        c = cluster(f"c{i}")
        c["metadata"]["labels"] = {"tier": "gold" if i % 2 else "silver"}
        assert (await gateway.call("POST", ns_path("clusters"), json=c))[0] == 201
    code, gold = await gateway.call("GET", ns_path("clusters") + "?labelSelector=tier%3Dgold")
    assert code == 200
    assert sorted(i["metadata"]["name"] for i in gold["items"]) == ["c1", "c3"]
    names: list[str] = []
    path = ns_path("clusters") + "?limit=2"
    while True:
        code, page = await gateway.call("GET", path)
        assert code == 200 and len(page["items"]) <= 2
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
        path = ns_path("clusters") + f"?limit=2&continue={token}"
    assert names == [f"c{i}" for i in range(5)]
    code, body = await gateway.call("GET", ns_path("clusters") + "?labelSelector=a%20in%20(")
    assert code == 400, body
    code, body = await gateway.call("GET", ns_path("clusters") + "?limit=x")
    assert code == 400


async def test_delete_200_when_gone_202_with_finalizers(gateway: Gateway) -> None:
    plain = cluster("plain")
    held = cluster("held")
    held["metadata"]["finalizers"] = ["test/hold"]
    for obj in (plain, held):
        assert (await gateway.call("POST", ns_path("clusters"), json=obj))[0] == 201
    code, body = await gateway.call("DELETE", ns_path("clusters", name="plain"))
    assert code == 200 and body["status"] == "Success"
    assert (await gateway.call("GET", ns_path("clusters", name="plain")))[0] == 404
    code, body = await gateway.call("DELETE", ns_path("clusters", name="held"))
    assert code == 202 and body["metadata"]["deletionTimestamp"]
    code, body = await gateway.call("DELETE", ns_path("clusters", name="held"))
    assert code == 202
    # the finalizer owner removes its finalizer: the object goes away
    code, body = await gateway.call(
        "PATCH", ns_path("clusters", name="held"), json={"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )
    assert code == 200, body
    assert (await gateway.call("GET", ns_path("clusters", name="held")))[0] == 404


async def test_400_malformed_and_mismatches(gateway: Gateway) -> None:
    code, body = await gateway.call(
        "POST", ns_path("clusters"), data=b"{not json", content_type="application/json"
    )
    assert code == 400
    assert_status(body, 400, "BadRequest")
    code, body = await gateway.call("POST", ns_path("clusters"), json=[1, 2])
    assert code == 400
    code, body = await gateway.call("POST", ns_path("clusters", ns="team-b"), json=cluster())
    assert code == 400 and "namespace" in body["message"]
    wrong_kind = cluster()
    wrong_kind["kind"] = "Machine"
    code, body = await gateway.call("POST", ns_path("clusters"), json=wrong_kind)
    assert code == 400 and "kind" in body["message"]
    wrong_version = cluster()
    wrong_version["apiVersion"] = "kaas.containercloud.dev/v9"
    assert (await gateway.call("POST", ns_path("clusters"), json=wrong_version))[0] == 400
    await gateway.call("POST", ns_path("clusters"), json=cluster("c1"))
    code, current = await gateway.call("GET", ns_path("clusters", name="c1"))
    code, body = await gateway.call("PUT", ns_path("clusters", name="other"), json=current)
    assert code == 400 and "name" in body["message"]
    listed = await gateway.store.list(Cluster, "team-a")
    assert [o.name for o in listed.items] == ["c1"]


async def test_401_missing_and_unknown_token(gateway: Gateway) -> None:
    async with gateway.session.get(gateway.url + ns_path("clusters")) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert_status(await r.json(), 401, "Unauthorized")
    async with gateway.session.get(
        gateway.url + ns_path("clusters"), headers={"Authorization": "Bearer nope"}
    ) as r:
        assert r.status == 401
        assert "invalid_token" in r.headers["WWW-Authenticate"]
    async with gateway.session.get(
        gateway.url + ns_path("clusters"), headers={"Authorization": "Basic b3BzOm9wcw=="}
    ) as r:
        assert r.status == 401


async def test_403_known_user_without_role(gateway: Gateway) -> None:
    code, body = await gateway.call("POST", ns_path("clusters"), json=cluster(), user="rita")
    assert code == 403
    assert_status(body, 403, "Forbidden")
    assert 'User "rita" cannot create' in body["message"]
    with pytest.raises(NotFound):
        await gateway.store.get(Cluster, "c1", "team-a")


async def test_404_paths(gateway: Gateway) -> None:
    code, body = await gateway.call("GET", ns_path("clusters", name="absent"))
    assert code == 404
    assert_status(body, 404, "NotFound")
    code, body = await gateway.call("GET", ns_path("widgets"))
    assert code == 404 and "widgets" in body["message"]
    code, body = await gateway.call("GET", "/apis/other.example/v1/namespaces/x/clusters")
    assert code == 404
    code, body = await gateway.call("GET", f"{BASE}/namespaces/team-a/regions")
    assert code == 404  # cluster-scoped kind has no namespaced path
    code, body = await gateway.call("GET", "/nothing/here")
    assert code == 404 and body["kind"] == "Status"
    code, body = await gateway.call("DELETE", ns_path("clusters", name="absent"))
    assert code == 404


async def test_409_already_exists_and_stale_resource_version(gateway: Gateway) -> None:
    code, created = await gateway.call("POST", ns_path("clusters"), json=cluster())
    assert code == 201
    code, body = await gateway.call("POST", ns_path("clusters"), json=cluster())
    assert code == 409 and body["reason"] == "AlreadyExists"
    first = dict(created, spec=dict(created["spec"], description="one"))
    code, updated = await gateway.call("PUT", ns_path("clusters", name="c1"), json=first)
    assert code == 200 and updated["spec"]["description"] == "one"
    assert updated["metadata"]["generation"] == 2
    stale = dict(created, spec=dict(created["spec"], description="two"))
    code, body = await gateway.call("PUT", ns_path("clusters", name="c1"), json=stale)
    assert code == 409 and body["reason"] == "Conflict"
    code, body = await gateway.call(
        "PATCH", ns_path("clusters", name="c1"),
        json={"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}},
        content_type="application/merge-patch+json",
    )
    assert code == 409
    code, got = await gateway.call("GET", ns_path("clusters", name="c1"))
    assert got["spec"]["description"] == "one"


async def test_415_wrong_content_type(gateway: Gateway) -> None:
    code, body = await gateway.call(
        "POST", ns_path("clusters"), data=b"apiVersion: x", content_type="application/yaml"
    )
    assert code == 415
    assert_status(body, 415, "UnsupportedMediaType")
    await gateway.call("POST", ns_path("clusters"), json=cluster())
    code, _ = await gateway.call(
        "PATCH", ns_path("clusters", name="c1"), json=[{"op": "add"}],
        content_type="application/json-patch+json",
    )
    assert code == 415


async def test_422_field_path_and_no_partial_write(gateway: Gateway) -> None:
    bad = cluster()
    bad["spec"]["region"] = "Not_A_Label"
    code, body = await gateway.call("POST", ns_path("clusters"), json=bad)
    assert code == 422
    assert_status(body, 422, "Invalid")
    causes = body["details"]["causes"]
    assert causes[0]["field"] == "spec.region"
    assert "matching regex" in causes[0]["message"]
    missing = cluster()
    del missing["spec"]["provider"]
    code, body = await gateway.call("POST", ns_path("clusters"), json=missing)
    assert code == 422 and body["details"]["causes"][0]["field"] == "spec"
    assert "provider" in body["details"]["causes"][0]["message"]
    typo = cluster()
    typo["spec"]["relase"] = "x"
    code, body = await gateway.call("POST", ns_path("clusters"), json=typo)
    assert code == 422 and "relase" in body["message"]
    assert (await gateway.store.list(Cluster, "team-a")).items == []
    # a bad update leaves the stored object untouched
    code, created = await gateway.call("POST", ns_path("clusters"), json=cluster())
    broken = dict(created, spec=dict(created["spec"], provider="mainframe"))
    code, body = await gateway.call("PUT", ns_path("clusters", name="c1"), json=broken)
    assert code == 422 and body["details"]["causes"][0]["field"] == "spec.provider"
    code, body = await gateway.call(
        "PATCH", ns_path("clusters", name="c1"), json={"spec": {"region": "UPPER"}},
        content_type="application/merge-patch+json",
    )
    assert code == 422 and body["details"]["causes"][0]["field"] == "spec.region"
    stored = await gateway.store.get(Cluster, "c1", "team-a")
    assert stored.spec.provider == "simulated" and stored.spec.region == "local"
    assert stored.metadata.resource_version == created["metadata"]["resourceVersion"]
    no_rv = dict(created, metadata=dict(created["metadata"], resourceVersion=None))
    code, body = await gateway.call("PUT", ns_path("clusters", name="c1"), json=no_rv)
    assert code == 422 and body["details"]["causes"][0]["field"] == "metadata.resourceVersion"


async def test_422_from_the_store_names_the_field(gateway: Gateway) -> None:
    """Namespaces and names in the URL are checked by the store (DNS rules), not by the
    schema: they come back as 422 with the field in ``details.causes``, as schema errors
    do (a name in a body is caught by the schema, with the same field)."""
    code, body = await gateway.call("POST", ns_path("clusters", ns="Team_A"),
                                    json=cluster(ns="Team_A"))
    assert_status(body, 422, "Invalid")
    [cause] = body["details"]["causes"]
    assert cause["field"] == "metadata.namespace" and "DNS label" in cause["message"]
    for method in ("GET", "DELETE"):
        code, body = await gateway.call(method, ns_path("clusters", name="Bad_Name"))
        assert_status(body, 422, "Invalid")
        [cause] = body["details"]["causes"]
        assert cause["field"] == "metadata.name" and "DNS subdomain" in cause["message"]
    code, body = await gateway.call("GET", ns_path("clusters", ns="Team_A", name="c1"))
    assert code == 422 and body["details"]["causes"][0]["field"] == "metadata.namespace"
    code, body = await gateway.call("POST", ns_path("clusters"), json=cluster("Bad_Name"))
    assert code == 422 and body["details"]["causes"][0]["field"] == "metadata.name"
    assert (await gateway.store.list(Cluster)).items == []


async def test_merge_patch_semantics(gateway: Gateway) -> None:
    c = cluster()
    c["metadata"]["labels"] = {"a": "1", "b": "2"}
    await gateway.call("POST", ns_path("clusters"), json=c)
    code, out = await gateway.call(
        "PATCH", ns_path("clusters", name="c1"),
        json={"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"paused": True}},
        content_type="application/merge-patch+json",
    )
    assert code == 200, out
    assert out["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert out["spec"]["paused"] is True and out["spec"]["release"] == "mke-1-0"
    assert out["metadata"]["generation"] == 2
    code, body = await gateway.call(
        "PATCH", ns_path("clusters", name="c1"), json={"metadata": {"name": "renamed"}},
        content_type="application/merge-patch+json",
    )
    assert code == 400


async def test_status_subresource_operator_only(gateway: Gateway) -> None:
    await gateway.call("POST", ns_path("clusters"), json=cluster())
    path = ns_path("clusters", name="c1") + "/status"
    patch = {"status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}}
    code, _ = await gateway.call("PATCH", path, json=patch, user="wally",
                                 content_type="application/merge-patch+json")
    assert code == 403
    code, out = await gateway.call("PATCH", path, json=patch,
                                   content_type="application/merge-patch+json")
    assert code == 200 and out["status"]["phase"] == "Ready"
    assert out["metadata"]["generation"] == 1
    code, got = await gateway.call("GET", path, user="rita")
    assert code == 200 and got["status"]["conditions"][0]["type"] == "Ready"
    # a spec change through the main resource keeps status
    code, out = await gateway.call(
        "PATCH", ns_path("clusters", name="c1"), json={"spec": {"description": "x"}},
        content_type="application/merge-patch+json",
    )
    assert out["status"]["phase"] == "Ready"


async def test_cluster_scoped_crud(gateway: Gateway) -> None:
    code, out = await gateway.call("POST", f"{BASE}/regions", json=region())
    assert code == 201 and "namespace" not in out["metadata"]
    code, lst = await gateway.call("GET", f"{BASE}/regions", user="nobody")
    assert code == 200 and [i["metadata"]["name"] for i in lst["items"]] == ["local"]
    assert (await gateway.call("DELETE", f"{BASE}/regions/local"))[0] == 200
    code, body = await gateway.call("POST", f"{BASE}/clusters", json=cluster())
    assert code == 405


async def test_health_ready_metrics_openapi_discovery(gateway: Gateway) -> None:
    async with gateway.session.get(gateway.url + "/healthz") as r:
        assert r.status == 200
    async with gateway.session.get(gateway.url + "/readyz") as r:
        assert r.status == 200
    await gateway.call("GET", ns_path("clusters", name="absent"))
    async with gateway.session.get(gateway.url + "/metrics") as r:
        text = await r.text()
    assert 'ccloud_api_requests_total{code="404"' in text
    assert "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}" in text
    async with gateway.session.get(gateway.url + "/openapi.json") as r:
        doc = await r.json()
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    path = f"{BASE}/namespaces/{{namespace}}/clusters/{{name}}"
    assert set(doc["paths"][path]) >= {"get", "put", "patch", "delete"}
    spec_schema = doc["components"]["schemas"]["ClusterSpec"]
    assert "region" in spec_schema["required"]
    assert f"{BASE}/regions" in doc["paths"]
    code, res = await gateway.call("GET", BASE, user="nobody")
    assert code == 200
    assert any(r["name"] == "clusters" and "cl" in r["shortNames"] for r in res["resources"])


async def test_503_before_the_store_is_ready_and_without_a_bus(
    nc: NATS, prefix: str, tmp_path: Path
) -> None:
    """``/readyz`` says 503 while the store cannot answer (its bucket does not exist yet)
    and 200 once it can; the events websocket is 503 on a gateway without a bus."""
    store = KVStore(nc, bucket=f"{prefix}-late")  # not started: no bucket yet
    app = create_app(store, Authenticator.from_dict(users_doc()), audit=tmp_path / "audit.log",
                     nc=None, mount_ui=False)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.make_url("/readyz")) as r:
                assert r.status == 503 and "store unavailable" in await r.text()
            async with session.get(server.make_url("/apis/events"),
                                   headers={"Authorization": f"Bearer {TOKENS['ops']}"}) as r:
                assert r.status == 503
                assert_status(await r.json(), 503, "ServiceUnavailable")
            await store.start()
            async with session.get(server.make_url("/readyz")) as r:
                assert r.status == 200
    finally:
        await server.close()
        await store.close()
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_key_value(f"{prefix}-late")


async def test_a_client_gone_mid_body_is_no_server_error(
    store: KVStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A create whose body never arrives (the client timed out and closed): nothing written,
    audited as 499 (client closed request), no 500 and no error traceback in the log."""
    caplog.set_level(logging.DEBUG, logger="services.api")
    audit_path = tmp_path / "audit.log"
    app = create_app(store, Authenticator.from_dict(users_doc()), audit=audit_path,
                     mount_ui=False)
    # Served as the gateway's entry point serves it (aiohttp's TestServer would instead
    # cancel the handler when the client goes).
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def audited() -> list[int]:
        if not audit_path.exists():
            return []
        return [json.loads(line)["code"] for line in audit_path.read_text().splitlines()]

    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write((f"POST {ns_path('clusters')} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Authorization: Bearer {TOKENS['ops']}\r\n"
                      "Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
                      '{"metadata": {"name": "half').encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

        await eventually(lambda: audited() == [499], timeout=10,
                         what="the abandoned create audited as 499")
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
        assert (await store.list(Cluster, "team-a")).items == []
    finally:
        await runner.cleanup()
