"""The gateway's health port (``CCLOUD_HEALTH_PORT``, as every service has one): /healthz,
/readyz, and /metrics with the fleet's state (``fleet_metrics.py``) beside the gateway's
own metrics.

A listener of its own because the API port is public (everything outside /apis is, and
the chart's Ingress exposes it), while the fleet's series name every tenant's clusters,
machines, hosts and credentials, which the API shows a user only in the namespaces they may
read. The API port's /metrics keeps serving the gateway's own metrics only.

The gateway follows the fleet's kinds (informer caches) from the first scrape on, not from
its start: following a kind costs every write of it a delivery and a decode here (~0.1 ms
of CPU per write at 1,000 writes/s, bench.events), which a gateway nobody scrapes need not
pay. The first scrape of a large store lists it (seconds for ~10^4 objects).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from services.api.app import REGISTRY_KEY, STORE_KEY, store_unready
from services.api.fleet_metrics import FleetCollector

log = logging.getLogger(__name__)
FLEET_KEY = web.AppKey("fleet", FleetCollector)


def _render(registries: tuple[CollectorRegistry, ...]) -> bytes:
    return b"".join(generate_latest(r) for r in registries)


def create_ops_app(app: web.Application) -> web.Application:
    """Probes and metrics for the gateway ``app`` (made by ``create_app``)."""
    store = app[STORE_KEY]
    fleet = FleetCollector(store)
    fleet_registry = CollectorRegistry()
    fleet_registry.register(fleet)
    registries = (app[REGISTRY_KEY], fleet_registry, REGISTRY)

    async def metrics(_: web.Request) -> web.Response:
        try:
            await fleet.refresh()
        except Exception as e:  # a failed scrape (up 0), not series vanishing as if deleted
            return web.Response(status=503, text=f"reading the fleet failed: {e!s:.200}")
        # A large fleet is ~10^5 series, seconds to build and render: not on the event loop
        # that serves the API. collect() reads only the snapshot refresh() took here.
        body = await asyncio.to_thread(_render, registries)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        why = await store_unready(store)
        return web.Response(status=503, text=why) if why else web.Response(text="ok")

    ops = web.Application()
    ops[FLEET_KEY] = fleet
    ops.add_routes([web.get("/metrics", metrics), web.get("/healthz", healthz),
                    web.get("/readyz", readyz)])
    return ops
