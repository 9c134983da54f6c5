"""Typed per-request storage keys shared by the middlewares and the handlers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.api.auth import User

USER = web.RequestKey("user", User)
# What a write touched (name, resourceVersion), filled by handlers for the audit log.
AUDIT = web.RequestKey("audit", dict[str, Any])
