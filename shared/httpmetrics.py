"""Request metrics for an aiohttp server: count by route, method and code, and latency.

Routes are labelled by their pattern (``/lcm/v1/machines/{ns}/{name}``), never by the
path, so a fleet of thousands of nodes makes a handful of series. Requests that are held
open by design (a watch, an agent's long-poll) are counted but kept out of the latency
histogram, whose figures would otherwise be their hold times.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_label(request: web.Request) -> str:
    resource = getattr(request.match_info.route, "resource", None)
    return "unmatched" if resource is None else resource.canonical


class RequestMetrics:
    def __init__(self, prefix: str, what: str, *, registry: CollectorRegistry = REGISTRY,
                 held: Callable[[web.Request], bool] = lambda _: False) -> None:
        self.held = held
        self.requests = Counter(
            f"{prefix}_requests_total", f"{what} requests by route, method and code",
            ["route", "method", "code"], registry=registry,
        )
        self.latency = Histogram(
            f"{prefix}_request_duration_seconds",
            f"{what} request latency by route and method (held requests excluded)",
            ["route", "method"], registry=registry,
        )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as e:
            code = e.status
            raise
        finally:
            route = route_label(request)
            self.requests.labels(route, request.method, str(code)).inc()
            if not self.held(request):
                self.latency.labels(route, request.method).observe(time.perf_counter() - start)
