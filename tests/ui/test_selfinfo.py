"""The UI's server side without a browser: the self endpoint and the public static pages."""

from __future__ import annotations

import aiohttp

from shared.models import Cluster
from tests.ui.conftest import TOKENS, Console, cluster_obj


async def get(console: Console, path: str, token: str | None = None, **kw):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.get(console.url + path, headers=headers,
                                                    **kw) as r:
        body = await r.text()
        return r.status, r.headers, body


async def self_of(console: Console, user: str) -> dict:
    async with aiohttp.ClientSession() as s, s.get(
        console.url + "/apis/ccloud/v1/self",
        headers={"Authorization": f"Bearer {TOKENS[user]}"},
    ) as r:
        assert r.status == 200
        return await r.json()


async def test_self_lists_bound_projects_with_what_the_user_may_write(console: Console):
    info = await self_of(console, "wally")
    assert info["user"] == "wally" and info["operator"] is False
    assert info["projects"] == [
        {"name": "team-a", "role": "writer", "canWrite": True, "canWriteCredentials": False},
        {"name": "team-b", "role": "reader", "canWrite": False, "canWriteCredentials": False},
    ]


async def test_operator_sees_every_namespace_that_holds_objects(console: Console):
    assert [p["name"] for p in (await self_of(console, "ops"))["projects"]] == ["default"]
    await console.store.create(cluster_obj("x", "team-z"))
    info = await self_of(console, "ops")
    assert [p["name"] for p in info["projects"]] == ["default", "team-z"]
    assert all(p["canWriteCredentials"] for p in info["projects"])
    await console.store.delete(Cluster, "x", "team-z")


async def test_self_needs_a_token(console: Console):
    status, headers, body = await get(console, "/apis/ccloud/v1/self")
    assert status == 401 and "Bearer" in headers["WWW-Authenticate"]
    assert '"kind": "Status"' in body or '"kind":"Status"' in body
    status, _, _ = await get(console, "/apis/ccloud/v1/self", token="nope")
    assert status == 401


async def test_pages_are_public_and_hold_no_data(console: Console):
    status, headers, body = await get(console, "/", allow_redirects=False)
    assert status == 302 and headers["Location"] == "/ui/"
    status, headers, body = await get(console, "/ui/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert '<script type="module" src="/ui/static/main.js">' in body
    for asset in ("main.js", "api.js", "dom.js", "app.css", "views/create.js"):
        status, _, _ = await get(console, f"/ui/static/{asset}")
        assert status == 200, asset
    status, _, _ = await get(console, "/ui/static/../__init__.py")
    assert status in (403, 404)
    status, _, _ = await get(console, "/ui/static/nope.js")
    assert status == 404
