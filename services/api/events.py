"""Change-event subscription for extensions: ``GET /apis/events`` upgraded to a websocket.

Query ``region``, ``kind`` and ``namespace`` narrow the feed (each optional); ``after=SEQ``
resumes after a bus stream sequence. Events come from the JetStream bus (subjects
``<prefix>.<region>.<kind>.<verb>``, see docs/api.md) through an ephemeral ordered
consumer, and only events about objects the caller may read are delivered. Events name an
object and its version, never its content, so nothing secret travels here.

Each websocket text message is ``{"seq": N, "event": <ChangeEvent>}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import msgspec
from aiohttp import WSMsgType, web
from nats.aio.client import Client as NATS
from nats.js import api

from services.api.auth import User
from services.api.context import USER
from services.api.discovery import resolve
from services.api.errors import ApiError
from shared.bus.events import decode_event, stream_name, subject
from shared.models import BY_KIND, GLOBAL_REGION
from shared.models.meta import DNSLabel

log = logging.getLogger(__name__)

PROTOCOL = "ccloud.events.v1"
_label = msgspec.json.Decoder(DNSLabel)


def _token(value: str, what: str) -> str:
    """A subject token from the query: a DNS label, or ``*`` for any."""
    if value in ("", "*"):
        return "*"
    try:
        return _label.decode(json.dumps(value))
    except msgspec.ValidationError:
        raise ApiError(400, f"{what} must be a DNS label, got {value!r}") from None


class EventFeed:
    """Serves the websocket; ``nc`` None means no bus is configured (503)."""

    def __init__(self, nc: NATS | None, *, prefix: str = "ccloud") -> None:
        self.nc = nc
        self.prefix = prefix
        self._sockets: set[web.WebSocketResponse] = set()

    async def shutdown(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        user: User = request[USER]
        if self.nc is None:
            raise ApiError(503, "the event bus is not configured on this gateway")
        q = request.query
        region = _token(q.get("region", ""), "region")
        kind_name = q.get("kind", "")
        cls = resolve(kind_name) if kind_name else None
        if kind_name and cls is None:
            raise ApiError(400, f"unknown kind {kind_name!r}")
        namespace = q.get("namespace") or None
        if cls is not None and not user.can("watch", cls, namespace):
            raise ApiError(403, f'User "{user.name}" cannot watch {cls.PLURAL} events here')
        if cls is None and namespace and not user.operator and not user.role_in(namespace):
            raise ApiError(403, f'User "{user.name}" cannot watch events in {namespace!r}')
        after = q.get("after", "")
        if after and not after.isdigit():
            raise ApiError(400, f"after must be a stream sequence number, got {after!r}")
        filt = subject(self.prefix, region, cls.KIND if cls else "*", "*")
        config = api.ConsumerConfig(
            deliver_policy=(
                api.DeliverPolicy.BY_START_SEQUENCE if after else api.DeliverPolicy.NEW
            ),
            opt_start_seq=int(after) + 1 if after else None,
        )
        js = self.nc.jetstream()
        sub = await js.subscribe(
            filt, stream=stream_name(self.prefix), ordered_consumer=True, config=config
        )
        ws = web.WebSocketResponse(protocols=(PROTOCOL,), heartbeat=20.0)
        await ws.prepare(request)
        self._sockets.add(ws)
        pump = asyncio.create_task(self._pump(sub, ws, user, namespace))
        try:
            async for msg in ws:  # the client only closes; anything it sends is ignored
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            self._sockets.discard(ws)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return ws

    async def _pump(self, sub, ws: web.WebSocketResponse, user: User, namespace: str | None):
        async for msg in sub.messages:
            try:
                ev = decode_event(msg.data)
            except msgspec.DecodeError:
                continue
            if namespace and ev.namespace != namespace:
                continue
            cls = BY_KIND.get(ev.kind)
            if cls is None or not user.can("watch", cls, ev.namespace):
                continue
            body = {"seq": msg.metadata.sequence.stream, "event": msgspec.to_builtins(ev)}
            if ws.closed:
                return
            await ws.send_str(json.dumps(body, separators=(",", ":")))


__all__ = ["GLOBAL_REGION", "PROTOCOL", "EventFeed"]
