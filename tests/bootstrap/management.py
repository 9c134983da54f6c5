"""A stand-in management set on its own nats-server, for bootstrap tests.

Real parts: a second nats-server, the KV store, the bus, the bridge (publisher + owner GC)
and a health server whose /readyz reflects its NATS connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats

from services.bootstrap import pivot
from services.bootstrap.state import Target
from shared.health import HealthServer
from shared.models import Resource
from shared.natsserver import NatsServer
from tests.harness import Harness, system


@dataclass
class Management:
    server: NatsServer
    sys: Harness
    health: HealthServer

    @property
    def readyz(self) -> str:
        return f"http://127.0.0.1:{self.health.port}/readyz"

    def target(self, prefix: str, **kw: object) -> Target:
        return Target(management_url=self.server.url, prefix=prefix,
                      health_urls=[self.readyz], **kw)  # type: ignore[arg-type]

    async def objects(self) -> list[Resource]:
        return await pivot.everything(self.sys.store)


@contextlib.asynccontextmanager
async def management_set(tmp_path: Path, prefix: str) -> AsyncIterator[Management]:
    server = NatsServer(tmp_path / "management-nats", server_name="management")
    await server.astart()
    nc = await nats.connect(server.url)
    health = HealthServer()
    health.add_check("nats", lambda: None if nc.is_connected else "nats disconnected")
    await health.start()
    try:
        async with system(nc, prefix) as h:
            yield Management(server, h, health)
    finally:
        await health.stop()
        with contextlib.suppress(Exception):
            await nc.close()
        await server.astop()
