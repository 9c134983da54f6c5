"""``GET /apis/ccloud/v1/self``: who the bearer token is and which projects it may see.

The answer mirrors Kubernetes' SelfSubjectReview plus the role bindings, so the UI can
offer only the projects (namespaces) the user can read and hide buttons for writes the
gateway would refuse anyway. Operators may see every namespace: for them the projects are
those that hold any object, plus ``default``. The path sits under ``/apis``, so the
gateway's auth middleware has already resolved the user.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.api.app import STORE_KEY
from services.api.auth import ROLE_RANK, User, is_credential_kind
from services.api.context import USER
from shared.models import ALL_KINDS
from shared.store import Store

SELF_PATH = "/apis/ccloud/v1/self"
DEFAULT_NAMESPACE = "default"


async def known_namespaces(store: Store) -> set[str]:
    """Every namespace that holds an object of a namespaced kind."""
    found = {DEFAULT_NAMESPACE}
    for cls in ALL_KINDS:
        if cls.NAMESPACED:
            found.update(o.metadata.namespace or "" for o in await store.list_all(cls))
    found.discard("")
    return found


def _project(namespace: str, role: str) -> dict[str, Any]:
    rank = ROLE_RANK.get(role, 0)
    return {
        "name": namespace,
        "role": role,
        "canWrite": rank >= ROLE_RANK["writer"],
        "canWriteCredentials": rank >= ROLE_RANK["admin"],
    }


async def describe(user: User, store: Store) -> dict[str, Any]:
    if user.operator:
        projects = [_project(ns, "admin") for ns in sorted(await known_namespaces(store))]
    else:
        projects = [
            _project(ns, role) for ns, role in sorted(user.roles.items())
            if ROLE_RANK.get(role, 0) >= ROLE_RANK["reader"]
        ]
    return {
        "kind": "SelfInfo",
        "apiVersion": "ccloud/v1",
        "user": user.name,
        "operator": user.operator,
        "projects": projects,
        "credentialKinds": sorted(c.KIND for c in ALL_KINDS if is_credential_kind(c)),
    }


async def self_info(request: web.Request) -> web.Response:
    return web.json_response(await describe(request[USER], request.app[STORE_KEY]))
