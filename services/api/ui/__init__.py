"""The web UI: a small single-page app served by the gateway, same bearer tokens.

``setup(app)`` (called by ``services.api.create_app``) mounts the static assets under
``/ui/`` and the ``/apis/ccloud/v1/self`` endpoint the UI uses to learn who the token
belongs to and which projects (namespaces) it may see. The pages are plain HTML, CSS and
ES modules with hash routing: no build step, nothing fetched from outside the gateway.
Everything outside ``/apis`` is public, so the pages hold no data until the user signs
in; every API call carries the user's token.

``/ui/auth-config`` (public too) tells the sign-in page whether to offer single sign-on: the
``oidc:`` section's issuer, client ID and scopes, all of which the IdP publishes anyway
(nothing else of the tokens file). The login itself runs in the browser against the IdP
(authorization code with PKCE, a public client); the gateway only verifies the ID token.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services.api.app import AUTH_KEY
from services.api.ui.selfinfo import SELF_PATH, self_info

STATIC = Path(__file__).parent / "static"
UI_PREFIX = "/ui/"
AUTH_CONFIG_PATH = "/ui/auth-config"
NO_CACHE = {"Cache-Control": "no-cache"}


async def index(_: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=NO_CACHE)


async def auth_config(request: web.Request) -> web.Response:
    oidc = request.app[AUTH_KEY].oidc
    config = None if oidc is None else {
        "issuer": oidc.verifier.issuer_url,
        "clientID": oidc.verifier.client_id,
        "scopes": oidc.scopes,
    }
    return web.json_response({"oidc": config}, headers=NO_CACHE)


async def to_ui(_: web.Request) -> web.Response:
    raise web.HTTPFound(UI_PREFIX)


def setup(app: web.Application) -> None:
    """Mount the UI pages, its auth config and the self endpoint on the gateway ``app``."""
    app.router.add_get(SELF_PATH, self_info)
    app.router.add_get(AUTH_CONFIG_PATH, auth_config)
    app.router.add_get("/", to_ui)
    app.router.add_get("/ui", to_ui)
    app.router.add_get(UI_PREFIX, index)
    app.router.add_static("/ui/static", STATIC, append_version=False)


__all__ = ["AUTH_CONFIG_PATH", "SELF_PATH", "STATIC", "UI_PREFIX", "setup"]
