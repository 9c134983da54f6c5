"""Suite-wide fixtures: one real nats-server per test session, isolated names per test,
and the fake OIDC provider the gateway and console tests share."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from shared.natsserver import NatsServer
from shared.store.kv import KVStore
from tests.fakes.oidc import FakeIdP


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    """A bus prefix / bucket prefix unique to one test, so tests share a server safely."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NATS]:
    conn = await nats.connect(nats_server.url)
    yield conn
    # Bounded: a client whose subscriptions were abandoned mid-cancel can stall close().
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), 10)


@pytest.fixture
async def kv_store(nc: NATS, prefix: str) -> AsyncIterator[KVStore]:
    """The embedded store on a bucket of this test's own, removed afterwards."""
    store = KVStore(nc, bucket=prefix)
    await store.start()
    yield store
    await store.close()
    with contextlib.suppress(Exception):
        await nc.jetstream().delete_key_value(prefix)


@pytest.fixture
async def idp(tmp_path: Path) -> AsyncIterator[FakeIdP]:
    """The fake OpenID Connect provider (HTTPS on 127.0.0.1), for the gateway's and the
    console's sign-in tests."""
    idp = FakeIdP(tmp_path / "idp")
    await idp.start()
    yield idp
    await idp.stop()
