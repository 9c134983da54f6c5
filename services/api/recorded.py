"""``GET .../<plural>/<name>/events``: an object's recent recorded events, newest first.

Events are what controllers recorded when they changed the object's conditions
(``shared.runtime.recorder``), kept in their own JetStream stream for a while. Reading
them is authorized exactly like a GET of the object (a reader of the namespace may), and
the object must exist (404 otherwise); only events of this object (same uid) are listed.
``?limit=`` (default 50, at most 500) bounds the answer. Conditions are secret-free, so
events are too.
"""

from __future__ import annotations

from aiohttp import web
from nats.aio.client import Client as NATS

from services.api.errors import ApiError
from services.api.resources import _query_int, authorize, target_of
from services.api.respond import json_response
from shared.models import GROUP, VERSION
from shared.runtime import recorder
from shared.store import Store

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class RecordedEvents:
    """Serves the events subresource; ``nc`` None means no NATS is configured (503)."""

    def __init__(self, store: Store, nc: NATS | None, *, prefix: str = "ccloud") -> None:
        self.store = store
        self.nc = nc
        self.prefix = prefix

    def routes(self) -> list[web.AbstractRouteDef]:
        ns = "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}/events"
        cl = "/apis/{group}/{version}/{plural}/{name}/events"
        return [web.get(ns, self.handle, allow_head=False),
                web.get(cl, self.handle, allow_head=False)]

    async def handle(self, request: web.Request) -> web.Response:
        t = target_of(request)
        authorize(request, "get", t)
        assert t.name is not None
        limit = _query_int(request, "limit") or DEFAULT_LIMIT
        obj = await self.store.get(t.cls, t.name, t.namespace)
        if self.nc is None:
            raise ApiError(503, "recorded events need NATS, which this gateway has not")
        events = await recorder.read(
            self.nc, self.prefix, t.cls.KIND, t.namespace, t.name,
            uid=obj.metadata.uid or "", limit=min(limit, MAX_LIMIT),
        )
        return json_response({
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EventList",
            "metadata": {},
            "items": events,
        })
