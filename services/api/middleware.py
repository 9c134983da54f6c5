"""Request pipeline: metrics, audit, error-to-Status mapping and bearer authentication.

Order (outermost first): metrics see every final code, audit sees the outcome of every
write, errors turn exceptions into Kubernetes Status bodies, auth guards ``/apis``.
Request bodies are never logged (credential kinds carry secrets).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.api.audit import AuditLog
from services.api.auth import Authenticator, User
from services.api.context import AUDIT, USER
from services.api.errors import ApiError, status_body
from services.api.oidc import IdPUnavailable, InvalidToken
from services.api.resources import subresource_of
from services.api.respond import json_response
from shared.httpmetrics import RequestMetrics
from shared.models import BY_PLURAL
from shared.store import StoreError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

WRITE_METHODS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
WS_TOKEN_PROTOCOL = "base64url.bearer.authorization.k8s.io."
ANONYMOUS = "system:anonymous"


def request_metrics(registry: CollectorRegistry) -> RequestMetrics:
    """Counts and latency of every request; watch streams are held, not timed."""
    return RequestMetrics("ccloud_api", "API", registry=registry,
                          held=lambda r: r.query.get("watch") in ("1", "true"))


def audit_middleware(audit: AuditLog):
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        verb = WRITE_METHODS.get(request.method)
        info = request.match_info
        if verb is None or "plural" not in info:
            return await handler(request)
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        finally:
            user: User | None = request.get(USER)
            noted = request.get(AUDIT, {})
            cls = BY_PLURAL.get(info["plural"])
            audit.record(
                user=user.name if user else ANONYMOUS,
                verb=verb,
                kind=cls.KIND if cls else info["plural"],
                namespace=info.get("namespace"),
                name=noted.get("name") or info.get("name"),
                resource_version=noted.get("resourceVersion"),
                subresource=subresource_of(request),
                code=code,
            )

    return middleware


CLIENT_CLOSED_REQUEST = 499  # nginx's code for it; recorded, never read by the client


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return e.response()
    except StoreError as e:
        return ApiError.from_store(e).response()
    except web.HTTPException as e:
        if e.status < 400:
            raise
        message = e.text if e.text and not e.text.startswith(f"{e.status}:") else e.reason
        if e.status == 404:
            message = f"the server could not find the requested resource ({request.path})"
        return json_response(status_body(e.status, message), status=e.status)
    except asyncio.CancelledError:
        raise
    except ConnectionResetError:
        # The client went away mid-request (its own timeout, a closed laptop): nothing was
        # written and nothing is wrong here, so no 500 in the metrics, the audit or the log.
        log.debug("%s %s: the client went away", request.method, request.path)
        return web.Response(status=CLIENT_CLOSED_REQUEST)
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return json_response(
            status_body(500, "internal error; see the gateway log"), status=500
        )


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for proto in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        proto = proto.strip()
        if proto.startswith(WS_TOKEN_PROTOCOL):
            raw = proto[len(WS_TOKEN_PROTOCOL):]
            try:
                return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
            except (ValueError, UnicodeDecodeError):
                return None
    return None


_DESCRIPTION_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}


def _invalid_token(description: str) -> str:
    """An RFC 6750 challenge; the description keeps only the characters it allows."""
    safe = "".join(c for c in description if c in _DESCRIPTION_CHARS)
    return f'Bearer realm="ccloud", error="invalid_token", error_description="{safe}"'


def auth_middleware(auth: Authenticator, *, guarded: tuple[str, ...] = ("/apis",)):
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(guarded):
            return await handler(request)
        token = _bearer(request)
        if token is None:
            raise ApiError(
                401, "Unauthorized: a bearer token is required",
                headers={"WWW-Authenticate": 'Bearer realm="ccloud"'},
            )
        try:
            user = await auth.authenticate(token)
        except InvalidToken as e:
            raise ApiError(
                401, f"Unauthorized: {e}", headers={"WWW-Authenticate": _invalid_token(str(e))}
            ) from None
        except IdPUnavailable as e:
            # Not a 401: the token may be fine, the client should retry rather than log in.
            raise ApiError(
                503, f"cannot verify the token now: {e}",
                headers={"Retry-After": str(max(1, math.ceil(e.retry_after)))},
            ) from None
        if user is None:
            raise ApiError(
                401, "Unauthorized: unknown or revoked token",
                headers={"WWW-Authenticate": 'Bearer realm="ccloud", error="invalid_token"'},
            )
        request[USER] = user
        return await handler(request)

    return middleware
