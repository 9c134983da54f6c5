"""A real gateway on 127.0.0.1 over a KVStore on the session's nats-server.

Users: ``ops`` (operator), ``ada`` (admin in team-a), ``wally`` (writer in team-a, reader
in team-b), ``rita`` (reader in team-a), ``nobody`` (authenticated, no bindings).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from nats.aio.client import Client as NATS

from services.api import create_app
from services.api.audit import AuditLog
from services.api.auth import Authenticator, user_entry
from shared.models import API_VERSION
from shared.store.kv import KVStore

TOKENS = {
    "ops": "tok-ops",
    "ada": "tok-ada",
    "wally": "tok-wally",
    "rita": "tok-rita",
    "nobody": "tok-nobody",
}
BASE = f"/apis/{API_VERSION}"


def users_doc() -> dict[str, Any]:
    return {
        "users": [
            user_entry("ops", TOKENS["ops"], operator=True),
            user_entry("ada", TOKENS["ada"], roles={"team-a": "admin"}),
            user_entry("wally", TOKENS["wally"], roles={"team-a": "writer", "team-b": "reader"}),
            user_entry("rita", TOKENS["rita"], roles={"team-a": "reader"}),
            user_entry("nobody", TOKENS["nobody"]),
        ]
    }


def cluster(name: str = "c1", ns: str = "team-a", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": ns, "labels": {"env": "dev"}},
        "spec": {"region": "local", "provider": "simulated", "release": "mke-1-0", **spec},
    }


def machine(name: str, role: str, cluster_name: str = "c1") -> dict:
    return {"apiVersion": API_VERSION, "kind": "Machine",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"cluster": cluster_name, "region": "local", "role": role,
                     "simulated": {"flavor": "small"}}}


def os_credential(name: str = "os1", ns: str = "team-a", password: str = "s3cr3t-pw") -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": "OpenStackCredential",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "region": "local",
            "auth": {
                "authUrl": "http://keystone.example:5000/v3",
                "username": "demo",
                "password": password,
                "projectName": "demo",
            },
        },
    }


def region(name: str = "local") -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "Region", "metadata": {"name": name},
            "spec": {"providers": ["simulated"]}}


def ns_path(plural: str, ns: str = "team-a", name: str = "") -> str:
    return f"{BASE}/namespaces/{ns}/{plural}" + (f"/{name}" if name else "")


@dataclass
class Gateway:
    url: str
    store: KVStore
    audit: AuditLog
    audit_path: Path
    session: aiohttp.ClientSession
    nc: NATS | None = None
    prefix: str = ""  # the bus prefix the gateway serves (recorded events live under it)

    def headers(self, user: str | None = "ops", **extra: str) -> dict[str, str]:
        h = dict(extra)
        if user:
            h["Authorization"] = f"Bearer {TOKENS[user]}"
        return h

    async def call(
        self, method: str, path: str, *, user: str | None = "ops", json: Any = None,
        content_type: str | None = None, data: bytes | None = None,
    ) -> tuple[int, Any]:
        headers = self.headers(user)
        body = data
        if json is not None:
            import json as _json

            body = _json.dumps(json).encode()
            headers["Content-Type"] = content_type or "application/json"
        elif content_type:
            headers["Content-Type"] = content_type
        async with self.session.request(method, self.url + path, data=body,
                                        headers=headers) as r:
            try:
                payload = await r.json(content_type=None)
            except ValueError:
                payload = await r.text()
            return r.status, payload

    def audit_lines(self) -> list[dict[str, Any]]:
        import json as _json

        if not self.audit_path.exists():
            return []
        return [_json.loads(line) for line in self.audit_path.read_text().splitlines()]


@pytest.fixture
def store(kv_store: KVStore) -> KVStore:
    return kv_store


@pytest.fixture
async def gateway(store: KVStore, tmp_path: Path, nc: NATS, prefix: str) -> AsyncIterator[Gateway]:
    audit_path = tmp_path / "audit.log"
    audit = AuditLog(audit_path)
    app = create_app(store, Authenticator.from_dict(users_doc()), audit=audit, nc=nc,
                     bus_prefix=prefix, mount_ui=False)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Gateway(
            url=str(server.make_url("")).rstrip("/"), store=store, audit=audit,
            audit_path=audit_path, session=session, nc=nc, prefix=prefix,
        )
    await server.close()


def deep(d: dict) -> dict:
    return copy.deepcopy(d)


class WatchStream:
    """An open watch request; ``next()`` returns the next decoded event line."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.status = response.status

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        import asyncio
        import json as _json

        line = await asyncio.wait_for(self.response.content.readline(), timeout)
        assert line, "watch stream ended"
        return _json.loads(line)

    async def take(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        return [await self.next(timeout) for _ in range(n)]

    def close(self) -> None:
        self.response.close()


async def open_watch(gw: Gateway, path: str, *, user: str = "ops", **query: str) -> WatchStream:
    params = {"watch": "true", **query}
    response = await gw.session.get(gw.url + path, params=params, headers=gw.headers(user))
    return WatchStream(response)
