"""The load generator's lean HTTP client against a real aiohttp server: statuses, bodies
framed by Content-Length, connections reused, and unframed responses refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bench.rawhttp import Client
from tests.httpserve import serve


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[tuple[str, str, bytes, int]]]]:
    seen: list[tuple[str, str, bytes, int]] = []  # method, path+query, body, peer port

    async def echo(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername")[1] if request.transport else 0
        seen.append((request.method, request.path_qs, body, peer))
        if request.path == "/chunked":
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            await resp.write(b"x" * 10)
            await resp.write_eof()
            return resp
        if request.path == "/empty":
            return web.Response(status=204)
        status = int(request.query.get("status", "200"))
        return web.json_response({"n": len(body), "pad": "y" * 70_000}, status=status)

    async with serve(echo) as url:
        yield url, seen


async def test_requests_answers_and_connection_reuse(server) -> None:
    url, seen = server
    client = Client(url, connections=2, headers={"Authorization": "Bearer t"})
    try:
        # Large bodies arrive in several reads; each answer is framed by its length.
        statuses = await asyncio.gather(*(
            client.request("POST", f"/a?status={200 + (i % 3)}", b"z" * i) for i in range(20)))
        assert statuses == [200 + (i % 3) for i in range(20)]
        assert sorted(len(body) for _, _, body, _ in seen) == list(range(20))
        assert {path for _, path, _, _ in seen} == {"/a?status=200", "/a?status=201",
                                                     "/a?status=202"}
        assert len({peer for *_, peer in seen}) <= 2, "more connections than the limit"
        assert await client.request("DELETE", "/empty") == 204
        assert seen[-1][0] == "DELETE"
    finally:
        client.close()


async def test_unframed_answers_and_bad_urls_are_refused(server) -> None:
    url, _ = server
    client = Client(url, connections=1, headers={})
    try:
        with pytest.raises(ValueError, match="unsupported response framing"):
            await client.request("GET", "/chunked")
        # The broken connection was dropped; the next request gets a fresh one.
        assert await client.request("GET", "/ok") == 200
    finally:
        client.close()
    with pytest.raises(ValueError, match="only http://"):
        Client("https://example.invalid", connections=1, headers={})
