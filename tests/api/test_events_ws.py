"""The /apis/events websocket: bus change events filtered by query and permissions."""

from __future__ import annotations

import base64
import json

import aiohttp
import msgspec
from nats.aio.client import Client as NATS

from services.api.events import PROTOCOL
from shared.bus import Bus, event_for
from shared.models import Cluster, Machine, OpenStackCredential, Region, convert
from tests.api.conftest import TOKENS, Gateway, cluster, os_credential, region


def _stored(cls, data: dict, rv: int):
    obj = convert(cls, data)
    md = msgspec.structs.replace(obj.metadata, uid=f"uid-{obj.name}", resource_version=str(rv))
    return msgspec.structs.replace(obj, metadata=md)


def _machine(name: str, ns: str) -> dict:
    return {
        "kind": "Machine", "metadata": {"name": name, "namespace": ns},
        "spec": {"cluster": "c1", "region": "local", "simulated": {}},
    }


async def _connect(gw: Gateway, user: str, **query: str) -> aiohttp.ClientWebSocketResponse:
    return await gw.session.ws_connect(
        gw.url + "/apis/events", params=query, protocols=(PROTOCOL,),
        headers=gw.headers(user),
    )


async def _next(ws: aiohttp.ClientWebSocketResponse) -> dict:
    msg = await ws.receive(timeout=10)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def test_events_filtered_by_query_and_permissions(
    gateway: Gateway, nc: NATS, prefix: str
) -> None:
    bus = Bus(nc, prefix=prefix)
    await bus.start()
    rita = await _connect(gateway, "rita", kind="cl")
    ops = await _connect(gateway, "ops", region="local")
    try:
        await bus.publish(event_for("ADDED", _stored(Cluster, cluster("hidden", "team-c"), 1)))
        await bus.publish(event_for("ADDED", _stored(Machine, _machine("m1", "team-a"), 2)))
        await bus.publish(event_for("ADDED", _stored(Region, region("east"), 3)))
        cred = _stored(OpenStackCredential, os_credential(), 4)
        await bus.publish(event_for("ADDED", cred))
        await bus.publish(event_for("MODIFIED", _stored(Cluster, cluster("c1", "team-a"), 5)))
        got = await _next(rita)
        assert (got["event"]["kind"], got["event"]["name"], got["event"]["type"]) == (
            "Cluster", "c1", "MODIFIED"
        )
        assert got["seq"] > 0
        seen = [await _next(ops) for _ in range(4)]
        assert [(m["event"]["kind"], m["event"]["name"]) for m in seen] == [
            ("Cluster", "hidden"), ("Machine", "m1"), ("OpenStackCredential", "os1"),
            ("Cluster", "c1"),
        ]
        assert "s3cr3t" not in json.dumps(seen)  # events name objects, never content
    finally:
        await rita.close()
        await ops.close()


async def test_events_namespace_filter_and_resume(gateway: Gateway, nc: NATS, prefix: str) -> None:
    bus = Bus(nc, prefix=prefix)
    await bus.start()
    ws = await _connect(gateway, "wally", namespace="team-b")
    try:
        await bus.publish(event_for("ADDED", _stored(Cluster, cluster("a", "team-a"), 1)))
        await bus.publish(event_for("ADDED", _stored(Cluster, cluster("b", "team-b"), 2)))
        first = await _next(ws)
        assert first["event"]["namespace"] == "team-b"
    finally:
        await ws.close()
    await bus.publish(event_for("ADDED", _stored(Cluster, cluster("b2", "team-b"), 3)))
    ws = await _connect(gateway, "wally", namespace="team-b", after=str(first["seq"]))
    try:
        again = await _next(ws)
        assert again["event"]["name"] == "b2"
    finally:
        await ws.close()


async def test_events_auth_errors(gateway: Gateway, nc: NATS, prefix: str) -> None:
    await Bus(nc, prefix=prefix).start()
    async with gateway.session.get(gateway.url + "/apis/events") as r:
        assert r.status == 401
    async with gateway.session.get(gateway.url + "/apis/events", params={"kind": "cl"},
                                   headers=gateway.headers("nobody")) as r:
        assert r.status == 403
    async with gateway.session.get(gateway.url + "/apis/events", params={"kind": "nope"},
                                   headers=gateway.headers("ops")) as r:
        assert r.status == 400
    async with gateway.session.get(gateway.url + "/apis/events", params={"region": "A B"},
                                   headers=gateway.headers("ops")) as r:
        assert r.status == 400
    # browsers cannot set headers on websockets: the token may ride in a subprotocol
    token = base64.urlsafe_b64encode(TOKENS["rita"].encode()).decode().rstrip("=")
    ws = await gateway.session.ws_connect(
        gateway.url + "/apis/events",
        protocols=(PROTOCOL, f"base64url.bearer.authorization.k8s.io.{token}"),
    )
    assert ws.protocol == PROTOCOL
    await ws.close()
