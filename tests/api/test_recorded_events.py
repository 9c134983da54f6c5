"""``GET .../<name>/events`` on a real gateway: events recorded by real status writes, newest
first, only the object's own, limited, and authorized like a GET of the object."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NATS

from shared.models import Cluster, Region
from shared.runtime import conditions, status_writer
from shared.runtime import recorder as rec
from tests.api.conftest import BASE, Gateway, cluster, ns_path, region


@pytest.fixture
async def recorder(nc: NATS, prefix: str) -> AsyncIterator[rec.Recorder]:
    r = rec.Recorder(nc, prefix=prefix, source="test")
    yield r
    await r.stop()


async def flap(gw: Gateway, recorder: rec.Recorder, cls, name: str, ns: str | None,
               *states: bool) -> None:
    with rec.recording(recorder, "lcm-cluster"):
        for up in states:
            obj = await gw.store.get(cls, name, ns)
            async with status_writer(gw.store, obj) as o:
                if up:
                    conditions.mark_true(o.status, "Ready", "Ready")
                else:
                    conditions.mark_false(o.status, "Ready", "NoCapacity", "1 machine waits")
    await recorder.flush()


def events_path(name: str, ns: str = "team-a", plural: str = "clusters") -> str:
    return ns_path(plural, ns, name) + "/events"


async def test_events_newest_first_limited_and_own_only(gateway: Gateway, recorder) -> None:
    for name in ("c1", "c2"):
        code, _ = await gateway.call("POST", ns_path("clusters"), json=cluster(name))
        assert code == 201
    await flap(gateway, recorder, Cluster, "c1", "team-a", True, False, True)
    await flap(gateway, recorder, Cluster, "c2", "team-a", False)
    code, body = await gateway.call("GET", events_path("c1"), user="rita")
    assert code == 200, body
    assert body["kind"] == "EventList"
    items = body["items"]
    assert [(e["type"], e["reason"], e["message"]) for e in items] == [
        ("Normal", "Ready", "Ready True (was False)"),
        ("Warning", "NoCapacity", "Ready False (was True): 1 machine waits"),
        ("Normal", "Ready", "Ready True"),
    ]
    uid = (await gateway.store.get(Cluster, "c1", "team-a")).metadata.uid
    assert items[0]["involvedObject"] == {"kind": "Cluster", "namespace": "team-a",
                                          "name": "c1", "uid": uid}
    assert items[0]["count"] == 1 and items[0]["reportingController"] == "lcm-cluster"
    assert items[0]["firstTimestamp"] and items[0]["lastTimestamp"]
    code, body = await gateway.call("GET", events_path("c1") + "?limit=2", user="rita")
    assert [e["message"] for e in body["items"]] == [i["message"] for i in items[:2]]
    code, body = await gateway.call("GET", events_path("c2"))
    assert [e["involvedObject"]["name"] for e in body["items"]] == ["c2"]
    # Repeats aggregate into the event they repeat.
    await flap(gateway, recorder, Cluster, "c1", "team-a", False)
    code, body = await gateway.call("GET", events_path("c1"))
    assert [(e["reason"], e["count"]) for e in body["items"]] == [
        ("NoCapacity", 2), ("Ready", 1), ("Ready", 1)]


async def test_events_authorized_like_a_get(gateway: Gateway, recorder) -> None:
    code, _ = await gateway.call("POST", ns_path("clusters", "team-b"),
                                 json=cluster("b1", "team-b"))
    assert code == 201
    await flap(gateway, recorder, Cluster, "b1", "team-b", False)
    code, body = await gateway.call("GET", events_path("b1", "team-b"), user="wally")
    assert code == 200 and len(body["items"]) == 1  # a reader of team-b
    code, body = await gateway.call("GET", events_path("b1", "team-b"), user="rita")
    assert code == 403 and body["reason"] == "Forbidden" and 'User "rita"' in body["message"]
    code, _ = await gateway.call("GET", events_path("b1", "team-b"), user="nobody")
    assert code == 403
    code, _ = await gateway.call("GET", events_path("b1", "team-b"), user=None)
    assert code == 401
    code, body = await gateway.call("GET", events_path("absent", "team-b"), user="wally")
    assert code == 404 and body["reason"] == "NotFound"
    code, _ = await gateway.call("GET", events_path("absent", "team-b"), user="rita")
    assert code == 403  # existence is not revealed to whoever may not read there


async def test_events_bad_queries_and_scopes(gateway: Gateway, recorder) -> None:
    code, _ = await gateway.call("POST", f"{BASE}/regions", json=region("local"))
    assert code == 201
    code, body = await gateway.call("GET", f"{BASE}/regions/local/events")
    assert code == 200 and body["items"] == []  # nothing recorded yet: empty, not an error
    await flap(gateway, recorder, Region, "local", None, True)
    code, body = await gateway.call("GET", f"{BASE}/regions/local/events", user="rita")
    assert code == 200 and [e["involvedObject"]["namespace"] for e in body["items"]] == [None]
    for query in ("?limit=-1", "?limit=ten"):
        code, body = await gateway.call("GET", f"{BASE}/regions/local/events{query}")
        assert code == 400 and "limit" in body["message"]
    code, body = await gateway.call("GET", f"{BASE}/clusters/c1/events")
    assert code == 404 and "namespaced" in body["message"]
    code, _ = await gateway.call("GET", f"{BASE}/namespaces/team-a/regions/local/events")
    assert code == 404
    code, _ = await gateway.call("GET", f"{BASE}/namespaces/team-a/gizmos/x/events")
    assert code == 404


async def test_openapi_documents_the_events_paths(gateway: Gateway) -> None:
    async with gateway.session.get(gateway.url + "/openapi.json") as r:
        doc = await r.json()
    for path in (f"{BASE}/namespaces/{{namespace}}/clusters/{{name}}/events",
                 f"{BASE}/regions/{{name}}/events"):
        op = doc["paths"][path]["get"]
        assert set(op["responses"]) >= {"200", "401", "403", "404"}
        assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/EventList"}
    event = doc["components"]["schemas"]["Event"]
    assert {"involvedObject", "count", "firstTimestamp", "lastTimestamp",
            "reportingController"} <= set(event["properties"])
