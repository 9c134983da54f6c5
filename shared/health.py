"""The /metrics, /healthz and /readyz endpoints every service exposes."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.webserve import start_site

ReadyCheck = Callable[[], str | None]


class HealthServer:
    """Serves probes and metrics; a ready check returns None when fine, else a reason."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.checks: dict[str, ReadyCheck] = {}
        self.app = web.Application()
        self.app.add_routes(
            [
                web.get("/metrics", self._metrics),
                web.get("/healthz", self._healthz),
                web.get("/readyz", self._readyz),
            ]
        )
        self._runner: web.AppRunner | None = None

    def add_check(self, name: str, check: ReadyCheck) -> None:
        self.checks[name] = check

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        failing = {n: r for n, c in self.checks.items() if (r := c()) is not None}
        if failing:
            return web.json_response({"status": "not ready", "checks": failing}, status=503)
        return web.json_response({"status": "ready"})

    async def start(self) -> None:
        self._runner, self.port = await start_site(self.app, self.host, self.port)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
