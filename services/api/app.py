"""The gateway application factory: routes, middlewares, health, metrics and UI mount.

``create_app(store, auth, ...)`` is used in-process by tests and the local runner; the
caller owns the store and the NATS connection. A ``services.api.ui`` package, when
present, mounts its pages through ``setup(app)``; everything outside ``/apis`` is public,
so the UI serves its own pages and calls ``/apis`` with the user's token.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from aiohttp import web
from nats.aio.client import Client as NATS
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from services.api import discovery, openapi
from services.api.audit import AuditLog
from services.api.auth import Authenticator
from services.api.events import EventFeed
from services.api.middleware import (
    audit_middleware,
    auth_middleware,
    error_middleware,
    request_metrics,
)
from services.api.recorded import RecordedEvents
from services.api.resources import ResourceHandlers
from services.api.watch import WatchStreamer
from shared.models import Region
from shared.store import Store

log = logging.getLogger(__name__)

STORE_KEY = web.AppKey("store", Store)
AUTH_KEY = web.AppKey("auth", Authenticator)
AUDIT_KEY = web.AppKey("audit", AuditLog)
# The gateway's own request metrics, which its health port (services/api/ops.py) serves too.
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
UI_MODULE = "services.api.ui"


def _mount_ui(app: web.Application) -> None:
    try:
        ui = importlib.import_module(UI_MODULE)
    except ModuleNotFoundError as e:
        if e.name and UI_MODULE.startswith(e.name):
            return
        raise
    setup: Callable[[web.Application], None] | None = getattr(ui, "setup", None)
    if setup is not None:
        setup(app)


async def store_unready(store: Store) -> str | None:
    """None when the store answers a list, else why not (the /readyz answer)."""
    try:
        await store.list(Region, limit=1)
    except Exception as e:  # any backend failure means not ready
        return f"store unavailable: {type(e).__name__}"
    return None


def create_app(
    store: Store,
    auth: Authenticator,
    *,
    audit: AuditLog | str | Path | None = None,
    nc: NATS | None = None,
    bus_prefix: str = "ccloud",
    extra_routes: Iterable[web.AbstractRouteDef] = (),
    mount_ui: bool = True,
) -> web.Application:
    """Build the gateway; ``nc`` enables the ``/apis/events`` websocket and the objects'
    recorded events (``.../<name>/events``)."""
    audit_log = audit if isinstance(audit, AuditLog) else AuditLog(audit)
    registry = CollectorRegistry()
    metrics = request_metrics(registry)
    app = web.Application(
        middlewares=[
            metrics.middleware,
            audit_middleware(audit_log),
            error_middleware,
            auth_middleware(auth),
        ],
        client_max_size=4 * 1024 * 1024,
    )
    app[STORE_KEY] = store
    app[AUTH_KEY] = auth
    app[AUDIT_KEY] = audit_log
    app[REGISTRY_KEY] = registry
    watcher = WatchStreamer(store)
    feed = EventFeed(nc, prefix=bus_prefix)
    handlers = ResourceHandlers(store, watcher)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        why = await store_unready(store)
        return web.Response(status=503, text=why) if why else web.Response(text="ok")

    async def metrics_page(_: web.Request) -> web.Response:
        body = generate_latest(registry) + generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openapi_doc(_: web.Request) -> web.Response:
        return web.json_response(openapi.document())

    async def groups(_: web.Request) -> web.Response:
        return web.json_response(discovery.api_group_list())

    async def resources(request: web.Request) -> web.Response:
        gv = f"{request.match_info['group']}/{request.match_info['version']}"
        if gv != discovery.API_VERSION:
            raise web.HTTPNotFound()
        return web.json_response(discovery.api_resource_list())

    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/metrics", metrics_page),
            web.get("/openapi.json", openapi_doc),
            web.get("/apis", groups),
            web.get("/apis/events", feed.handle),
            web.get("/apis/{group}/{version}", resources),
            *handlers.routes(),
            *RecordedEvents(store, nc, prefix=bus_prefix).routes(),
            *extra_routes,
        ]
    )

    async def on_shutdown(_: web.Application) -> None:
        await watcher.shutdown()
        await feed.shutdown()

    async def on_cleanup(_: web.Application) -> None:
        audit_log.close()

    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    if mount_ui:
        _mount_ui(app)
    return app
