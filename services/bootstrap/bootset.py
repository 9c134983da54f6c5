"""The temporary bootstrap service set: a nats-server and the embedded store, on loopback.

Everything lives under ``<data>/nats``, so a resumed bootstrap finds the objects (and the
simulated provider's nodes) it made, and cleanup is deleting the folder.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import nats
from nats.aio.client import Client as NATS

from services.bootstrap.state import BootstrapError
from services.providers.simulated.nodes import KVNodes, nodes_bucket
from shared.natsserver import NatsServer, NatsServerError
from shared.store.kv import KVStore

BOOTSTRAP_PREFIX = "bootstrap"


class BootstrapSet:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.server = NatsServer(data / "nats", server_name="ccloud-bootstrap")
        self.nc: NATS | None = None
        self.store: KVStore | None = None
        self.nodes: KVNodes | None = None

    async def start(self) -> None:
        try:
            await self.server.astart()
        except NatsServerError as e:
            raise BootstrapError(f"cannot start the bootstrap nats-server: {e}") from None
        self.nc = await nats.connect(self.server.url, name="ccloud-bootstrap")
        self.store = KVStore(self.nc, bucket=f"{BOOTSTRAP_PREFIX}-objects")
        await self.store.start()
        self.nodes = KVNodes(self.nc, bucket=nodes_bucket(BOOTSTRAP_PREFIX))
        await self.nodes.start()

    async def stop(self) -> None:
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
            self.nc = None
        await self.server.astop()

    async def destroy(self) -> None:
        """Stop and remove every trace of the bootstrap set, the progress file included."""
        await self.stop()
        shutil.rmtree(self.data, ignore_errors=True)
