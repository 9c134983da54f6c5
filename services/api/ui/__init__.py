"""The web UI: a small single-page app served by the gateway, same bearer tokens.

``setup(app)`` (called by ``services.api.create_app``) mounts the static assets under
``/ui/`` and the ``/apis/ccloud/v1/self`` endpoint the UI uses to learn who the token
belongs to and which projects (namespaces) it may see. The pages are plain HTML, CSS and
ES modules with hash routing: no build step, nothing fetched from outside the gateway.
Everything outside ``/apis`` is public, so the pages hold no data until the user signs
in; every API call carries the user's token.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services.api.ui.selfinfo import SELF_PATH, self_info

STATIC = Path(__file__).parent / "static"
UI_PREFIX = "/ui/"
NO_CACHE = {"Cache-Control": "no-cache"}


async def index(_: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=NO_CACHE)


async def to_ui(_: web.Request) -> web.Response:
    raise web.HTTPFound(UI_PREFIX)


def setup(app: web.Application) -> None:
    """Mount the UI pages and the self endpoint on the gateway ``app``."""
    app.router.add_get(SELF_PATH, self_info)
    app.router.add_get("/", to_ui)
    app.router.add_get("/ui", to_ui)
    app.router.add_get(UI_PREFIX, index)
    app.router.add_static("/ui/static", STATIC, append_version=False)


__all__ = ["SELF_PATH", "STATIC", "UI_PREFIX", "setup"]
