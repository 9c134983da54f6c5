"""Watch streams: ordering, resume from a resourceVersion, 410, selectors, scoping."""

from __future__ import annotations

import pytest

from services.api import watch as watch_module
from shared.store.kv import HISTORY
from tests.api.conftest import Gateway, cluster, ns_path, open_watch

MERGE = "application/merge-patch+json"


async def test_watch_from_version_streams_changes(gateway: Gateway) -> None:
    _, c1 = await gateway.call("POST", ns_path("clusters"), json=cluster("c1"))
    rv = c1["metadata"]["resourceVersion"]
    w = await open_watch(gateway, ns_path("clusters"), resourceVersion=rv)
    try:
        assert w.status == 200
        await gateway.call("PATCH", ns_path("clusters", name="c1"),
                           json={"spec": {"description": "x"}}, content_type=MERGE)
        await gateway.call("POST", ns_path("clusters"), json=cluster("c2"))
        await gateway.call("DELETE", ns_path("clusters", name="c2"))
        events = await w.take(3)
    finally:
        w.close()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("MODIFIED", "c1"), ("ADDED", "c2"), ("DELETED", "c2"),
    ]
    assert events[0]["object"]["spec"]["description"] == "x"
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(rv)


async def test_watch_without_version_starts_with_current_objects(gateway: Gateway) -> None:
    await gateway.call("POST", ns_path("clusters"), json=cluster("c1"))
    await gateway.call("POST", ns_path("clusters"), json=cluster("c2"))
    w = await open_watch(gateway, ns_path("clusters"))
    try:
        first = await w.take(2)
        assert {e["object"]["metadata"]["name"] for e in first} == {"c1", "c2"}
        assert {e["type"] for e in first} == {"ADDED"}
        await gateway.call("POST", ns_path("clusters"), json=cluster("c3"))
        ev = await w.next()
        assert (ev["type"], ev["object"]["metadata"]["name"]) == ("ADDED", "c3")
    finally:
        w.close()


async def test_watch_resume_loses_nothing(gateway: Gateway) -> None:
    _, c1 = await gateway.call("POST", ns_path("clusters"), json=cluster("c1"))
    w = await open_watch(gateway, ns_path("clusters"),
                         resourceVersion=c1["metadata"]["resourceVersion"])
    await gateway.call("POST", ns_path("clusters"), json=cluster("c2"))
    seen = await w.take(1)
    w.close()
    last_rv = seen[-1]["object"]["metadata"]["resourceVersion"]
    # changes while the client is away
    await gateway.call("PATCH", ns_path("clusters", name="c1"),
                       json={"spec": {"paused": True}}, content_type=MERGE)
    await gateway.call("POST", ns_path("clusters"), json=cluster("c3"))
    await gateway.call("DELETE", ns_path("clusters", name="c2"))
    w = await open_watch(gateway, ns_path("clusters"), resourceVersion=last_rv)
    try:
        resumed = await w.take(3)
    finally:
        w.close()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in resumed] == [
        ("MODIFIED", "c1"), ("ADDED", "c3"), ("DELETED", "c2"),
    ]
    assert all(int(e["object"]["metadata"]["resourceVersion"]) > int(last_rv) for e in resumed)


async def test_watch_too_old_version_is_410(gateway: Gateway) -> None:
    # The KV backend raises Gone for a version it does not have (a reset store).
    w = await open_watch(gateway, ns_path("clusters"), resourceVersion="999999999")
    try:
        assert w.status == 410
        body = await w.response.json()
        assert body["kind"] == "Status" and body["reason"] == "Expired" and body["code"] == 410
    finally:
        w.close()


async def _expired_version(gateway: Gateway) -> str:
    """A version whose history the store no longer keeps: one object patched more often
    than the KV keeps revisions per key since then."""
    _, base = await gateway.call("POST", ns_path("clusters"), json=cluster("base"))
    await gateway.call("POST", ns_path("clusters"), json=cluster("busy"))
    for i in range(HISTORY + 1):
        code, _ = await gateway.call("PATCH", ns_path("clusters", name="busy"),
                                     json={"metadata": {"labels": {"n": str(i)}}},
                                     content_type=MERGE)
        assert code == 200
    return base["metadata"]["resourceVersion"]


async def test_watch_from_a_compacted_version_is_410(gateway: Gateway) -> None:
    rv = await _expired_version(gateway)
    w = await open_watch(gateway, ns_path("clusters"), resourceVersion=rv)
    try:
        assert w.status == 410
        body = await w.response.json()
        assert (body["kind"], body["reason"], body["code"]) == ("Status", "Expired", 410)
        assert "too old" in body["message"]
    finally:
        w.close()
    # The client relists and watches from the list's version: that works.
    code, lst = await gateway.call("GET", ns_path("clusters"))
    assert code == 200 and len(lst["items"]) == 2
    w = await open_watch(gateway, ns_path("clusters"),
                         resourceVersion=lst["metadata"]["resourceVersion"])
    try:
        assert w.status == 200
        await gateway.call("POST", ns_path("clusters"), json=cluster("late"))
        ev = await w.next()
        assert (ev["type"], ev["object"]["metadata"]["name"]) == ("ADDED", "late")
    finally:
        w.close()


async def test_gone_after_the_stream_started_is_an_error_event(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once headers are out, an expiry arrives as a final ERROR event with a 410 Status, as
    the Kubernetes API server sends it (here: the gateway does not wait for the store)."""
    monkeypatch.setattr(watch_module, "START_WAIT", 0.0)
    rv = await _expired_version(gateway)
    w = await open_watch(gateway, ns_path("clusters"), resourceVersion=rv)
    try:
        assert w.status == 200
        ev = await w.next()
        assert ev["type"] == "ERROR"
        assert (ev["object"]["kind"], ev["object"]["code"]) == ("Status", 410)
        assert ev["object"]["reason"] == "Expired"
        assert await w.response.content.readline() == b""  # the stream ends there
    finally:
        w.close()


async def test_watch_label_selector_and_timeout(gateway: Gateway) -> None:
    _, base = await gateway.call("POST", ns_path("clusters"), json=cluster("base"))
    w = await open_watch(gateway, ns_path("clusters"), labelSelector="tier=gold",
                         resourceVersion=base["metadata"]["resourceVersion"])
    try:
        silver = cluster("s1")
        silver["metadata"]["labels"] = {"tier": "silver"}
        gold = cluster("g1")
        gold["metadata"]["labels"] = {"tier": "gold"}
        await gateway.call("POST", ns_path("clusters"), json=silver)
        await gateway.call("POST", ns_path("clusters"), json=gold)
        ev = await w.next()
        assert ev["object"]["metadata"]["name"] == "g1"
    finally:
        w.close()
    w = await open_watch(gateway, ns_path("clusters"), timeoutSeconds="1",
                         resourceVersion=base["metadata"]["resourceVersion"])
    assert w.status == 200
    text = await w.response.text()  # the server ends the stream by itself
    assert text.count("\n") == 2  # s1 and g1


async def test_all_namespace_watch_only_shows_readable_namespaces(gateway: Gateway) -> None:
    w = await open_watch(gateway, "/apis/kaas.containercloud.dev/v1alpha1/clusters",
                         user="wally")
    try:
        assert w.status == 200
        for ns in ("team-c", "team-b", "team-a"):
            await gateway.call("POST", ns_path("clusters", ns=ns), json=cluster("c", ns=ns))
        events = await w.take(2)
        assert [e["object"]["metadata"]["namespace"] for e in events] == ["team-b", "team-a"]
    finally:
        w.close()
    code, lst = await gateway.call("GET", "/apis/kaas.containercloud.dev/v1alpha1/clusters",
                                   user="wally")
    assert code == 200
    assert sorted(i["metadata"]["namespace"] for i in lst["items"]) == ["team-a", "team-b"]
    code, lst = await gateway.call("GET", "/apis/kaas.containercloud.dev/v1alpha1/clusters")
    assert len(lst["items"]) == 3


async def test_label_selector_watch_sends_leaving_and_joining(gateway: Gateway) -> None:
    """As Kubernetes does: an object whose labels stop matching is DELETED for the watcher,
    one that starts matching is ADDED; objects never selected are not sent at all."""
    gold = cluster("g1")
    gold["metadata"]["labels"] = {"tier": "gold"}
    _, g1 = await gateway.call("POST", ns_path("clusters"), json=gold)

    async def relabel(tier: str) -> None:
        code, _ = await gateway.call("PATCH", ns_path("clusters", name="g1"),
                                     json={"metadata": {"labels": {"tier": tier}}},
                                     content_type=MERGE)
        assert code == 200

    for query in ({}, {"resourceVersion": g1["metadata"]["resourceVersion"]}):
        w = await open_watch(gateway, ns_path("clusters"), labelSelector="tier=gold", **query)
        try:
            if not query:
                first = await w.next()  # the current set comes first
                assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "g1")
            await relabel("silver")
            silver = cluster(f"s-{len(query)}")
            silver["metadata"]["labels"] = {"tier": "silver"}
            await gateway.call("POST", ns_path("clusters"), json=silver)
            await relabel("gold")
            await gateway.call("PATCH", ns_path("clusters", name="g1"),
                               json={"spec": {"description": "still gold"}}, content_type=MERGE)
            events = await w.take(3)
        finally:
            w.close()
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
            ("DELETED", "g1"), ("ADDED", "g1"), ("MODIFIED", "g1"),
        ], query
        assert events[0]["object"]["metadata"]["labels"] == {"tier": "silver"}


async def _socket(gateway: Gateway, path: str, user: str = "ops", **query: str):
    """A watch over a websocket as the console opens one: the token in a subprotocol."""
    import base64

    from services.api.watch import WS_PROTOCOL
    from tests.api.conftest import TOKENS

    token = base64.urlsafe_b64encode(TOKENS[user].encode()).decode().rstrip("=")
    return await gateway.session.ws_connect(
        f"{gateway.url}{path}", params={"watch": "true", **query},
        protocols=(WS_PROTOCOL, f"base64url.bearer.authorization.k8s.io.{token}"))


async def test_a_watch_over_a_websocket_carries_the_same_events(gateway: Gateway) -> None:
    """One event per text message, resumable from a version, readable objects only; an
    expired version is an ERROR event carrying the 410 Status, then the close."""
    import json

    _, c1 = await gateway.call("POST", ns_path("clusters"), json=cluster("c1"))
    rv = c1["metadata"]["resourceVersion"]
    ws = await _socket(gateway, ns_path("clusters"), resourceVersion=rv)
    try:
        assert ws.protocol == "ccloud.watch.v1"
        await gateway.call("PATCH", ns_path("clusters", name="c1"),
                           json={"spec": {"description": "x"}}, content_type=MERGE)
        await gateway.call("POST", ns_path("clusters"), json=cluster("c2"))
        await gateway.call("DELETE", ns_path("clusters", name="c2"))
        events = [json.loads(await ws.receive_str(timeout=10)) for _ in range(3)]
    finally:
        await ws.close()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("MODIFIED", "c1"), ("ADDED", "c2"), ("DELETED", "c2"),
    ]
    assert events[0]["object"]["spec"]["description"] == "x"

    ws = await _socket(gateway, ns_path("clusters"), resourceVersion="999999999")
    try:
        error = json.loads(await ws.receive_str(timeout=10))
        assert error["type"] == "ERROR"
        assert (error["object"]["code"], error["object"]["reason"]) == (410, "Expired")
        closing = await ws.receive(timeout=10)
        assert closing.type.name in ("CLOSE", "CLOSED", "CLOSING")
    finally:
        await ws.close()


async def test_a_websocket_watch_needs_a_token_that_may_watch(gateway: Gateway) -> None:
    import aiohttp

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await gateway.session.ws_connect(f"{gateway.url}{ns_path('clusters')}",
                                         params={"watch": "true"},
                                         protocols=("ccloud.watch.v1",))
    assert refused.value.status == 401
