"""Starting an aiohttp app on a host and port, and learning the port the OS gave."""

from __future__ import annotations

import ssl

from aiohttp import web


async def start_site(
    app: web.Application, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    """Serve ``app``; returns its runner (``cleanup()`` stops it) and the bound port, which
    differs from ``port`` when that is 0 (tests, ``--port 0``)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    # aiohttp keeps the listening server private; its sockets say the bound port.
    sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
    return runner, sockets[0].getsockname()[1] if sockets else port
