"""REST handlers for every kind: get, list, create, update, merge patch, delete, status,
and scale for the kinds that have replicas.

Paths follow Kubernetes: ``/apis/<group>/<version>/namespaces/<ns>/<plural>[/<name>[/status]]``
for namespaced kinds and ``/apis/<group>/<version>/<plural>[/<name>[/status]]`` for
cluster-scoped kinds (or, for namespaced kinds, a list across every namespace the caller
may read). Every object leaving the gateway passes through ``redact``. A scalable kind
(``Resource.SCALE``) also serves ``.../<name>/scale`` (an autoscaling/v1 Scale,
``services/api/scale.py``), whose writes are updates of the object's ``spec.replicas``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from services.api.admission import Admission
from services.api.auth import User
from services.api.context import AUDIT, USER
from services.api.deletion import DeleteGuards
from services.api.errors import ApiError, status_body
from services.api.payload import (
    PATCH_TYPES,
    check_identity,
    controlled,
    decoded_body,
    keep_controller_fields,
    keep_secrets,
    read_json,
    to_object,
)
from services.api.respond import json_response, object_response, wire
from services.api.scale import read_scale, scale_of
from services.api.watch import WatchStreamer
from shared.mergepatch import merge_patch
from shared.models import BY_PLURAL, GROUP, VERSION, Resource, to_dict
from shared.store import Conflict, Invalid, NotFound, Store, StoreError, selectors, semantics

PATCH_RETRIES = 5
SUBRESOURCES = ("status", "scale")


@dataclass(frozen=True)
class Target:
    cls: type[Resource]
    namespace: str | None
    name: str | None
    subresource: str = ""

    @property
    def plural(self) -> str:
        return self.cls.PLURAL


def subresource_of(request: web.Request) -> str:
    """``status`` or ``scale`` on a subresource's route, else "" (also for an object that
    happens to be named so: the route, not the path, tells)."""
    resource = getattr(request.match_info.route, "resource", None)
    canonical = resource.canonical if resource is not None else ""
    for sub in SUBRESOURCES:
        if canonical.endswith("}/" + sub):
            return sub
    return ""


def target_of(request: web.Request) -> Target:
    info = request.match_info
    if info.get("group") != GROUP or info.get("version") != VERSION:
        raise ApiError(404, f"the server could not find the requested resource ({request.path})")
    plural = info["plural"]
    cls = BY_PLURAL.get(plural)
    if cls is None:
        raise ApiError(404, f"the server doesn't have a resource type {plural!r}")
    namespace = info.get("namespace")
    name = info.get("name")
    sub = subresource_of(request) if name else ""
    if sub == "scale" and not cls.SCALE:
        raise ApiError(404, f"the server could not find the requested resource ({cls.KIND} "
                            "has no scale subresource)")
    if namespace is not None and not cls.NAMESPACED:
        raise ApiError(404, f"{cls.KIND} is cluster-scoped: it has no namespaced path")
    if namespace is None and cls.NAMESPACED and name is not None:
        raise ApiError(404, f"{cls.KIND} is namespaced: use /namespaces/<ns>/{plural}/{name}")
    return Target(cls=cls, namespace=namespace, name=name, subresource=sub)


def forbidden(user: User, verb: str, t: Target) -> ApiError:
    res = f"{t.plural}/{t.subresource}" if t.subresource else t.plural
    where = f' in the namespace "{t.namespace}"' if t.namespace else " at the cluster scope"
    subject = f'{t.plural}.{GROUP} "{t.name}"' if t.name else f"{t.plural}.{GROUP}"
    return ApiError(
        403,
        f'{subject} is forbidden: User "{user.name}" cannot {verb} resource "{res}" '
        f'in API group "{GROUP}"{where}',
        details={"kind": t.plural, "name": t.name or "", "group": GROUP},
    )


def authorize(request: web.Request, verb: str, t: Target) -> User:
    user: User = request[USER]
    if not user.can(verb, t.cls, t.namespace, subresource=t.subresource):
        raise forbidden(user, verb, t)
    return user


def note(request: web.Request, *, name: str | None = None, obj: Resource | None = None) -> None:
    """Tell the audit middleware what the write touched."""
    audit = request.setdefault(AUDIT, {})
    if name:
        audit["name"] = name
    if obj is not None:
        audit["name"] = obj.metadata.name
        audit["resourceVersion"] = obj.metadata.resource_version or ""


def _query_int(request: web.Request, key: str) -> int | None:
    raw = request.query.get(key)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{key} must be an integer, got {raw!r}") from None
    if value < 0:
        raise ApiError(400, f"{key} must not be negative")
    return value


async def _note_attempted_name(request: web.Request) -> None:
    """Best-effort name of an object being created, so even refused creates are audited."""
    data, _ = await decoded_body(request)
    meta = data.get("metadata") if isinstance(data, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    if isinstance(name, str):
        note(request, name=name[:253])


async def _merge_patch(request: web.Request) -> tuple[Target, dict[str, Any]]:
    """The target of a PATCH, authorized, and its merge patch (a JSON object)."""
    t = target_of(request)
    authorize(request, "patch", t)
    assert t.name is not None
    note(request, name=t.name)
    patch = await read_json(request, allowed=PATCH_TYPES)
    if not isinstance(patch, dict):
        raise ApiError(400, "a merge patch must be a JSON object")
    return t, patch


def dry_run(request: web.Request) -> bool:
    """``?dryRun=All`` (Kubernetes' server-side dry run): every check a write makes -
    schema, identity, admission, existence, resourceVersion - and nothing stored."""
    value = request.query.get("dryRun")
    if value is None:
        return False
    if value != "All":
        raise ApiError(400, f"dryRun must be All, not {value!r}")
    return True


class ResourceHandlers:
    """Handlers bound to one store; see ``routes()`` for the URL table."""

    def __init__(self, store: Store, watcher: WatchStreamer) -> None:
        self.store = store
        self.watcher = watcher
        self.admit = Admission(store)
        self.guard_delete = DeleteGuards(store)

    def routes(self) -> list[web.AbstractRouteDef]:
        ns = "/apis/{group}/{version}/namespaces/{namespace}/{plural}"
        cl = "/apis/{group}/{version}/{plural}"
        out: list[web.AbstractRouteDef] = []
        for base in (ns, cl):
            out += [
                web.get(base, self.collection, allow_head=False),
                web.post(base, self.create),
                web.get(base + "/{name}", self.get, allow_head=False),
                web.put(base + "/{name}", self.update),
                web.patch(base + "/{name}", self.patch),
                web.delete(base + "/{name}", self.delete),
                web.get(base + "/{name}/status", self.get, allow_head=False),
                web.put(base + "/{name}/status", self.update),
                web.patch(base + "/{name}/status", self.patch),
                web.get(base + "/{name}/scale", self.get_scale, allow_head=False),
                web.put(base + "/{name}/scale", self.update_scale),
                web.patch(base + "/{name}/scale", self.patch_scale),
            ]
        return out

    # --- reads --------------------------------------------------------------------------

    async def get(self, request: web.Request) -> web.Response:
        t = target_of(request)
        authorize(request, "get", t)
        assert t.name is not None
        obj = await self.store.get(t.cls, t.name, t.namespace)
        return object_response(obj)

    async def collection(self, request: web.Request) -> web.StreamResponse:
        t = target_of(request)
        watching = request.query.get("watch", "").lower() in ("1", "true")
        user = authorize(request, "watch" if watching else "list", t)
        selector = request.query.get("labelSelector") or None
        try:
            match = selectors.parse(selector)
        except Invalid as e:
            raise ApiError(400, str(e)) from None
        if watching:
            return await self.watcher.stream(request, t.cls, t.namespace, user=user, match=match)
        limit = _query_int(request, "limit")
        try:
            page = await self.store.list(
                t.cls,
                t.namespace,
                label_selector=selector,
                limit=limit or None,
                continue_token=request.query.get("continue") or None,
            )
        except Invalid as e:
            raise ApiError(400, str(e)) from None
        items = [
            o for o in page.items
            if t.namespace is not None or user.can("list", t.cls, o.metadata.namespace)
        ]
        meta: dict[str, Any] = {"resourceVersion": page.resource_version}
        if page.continue_token:
            meta["continue"] = page.continue_token
        return json_response(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": f"{t.cls.KIND}List",
                "metadata": meta,
                "items": [wire(o) for o in items] if t.cls.SECRET_FIELDS else items,
            }
        )

    # --- writes -------------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        t = target_of(request)
        if t.cls.NAMESPACED and t.namespace is None:
            raise ApiError(405, f"{t.cls.KIND} is namespaced: POST to /namespaces/<ns>/{t.plural}")
        await _note_attempted_name(request)
        authorize(request, "create", t)
        data = check_identity(await read_json(request), t.cls, namespace=t.namespace, name=None)
        obj = to_object(t.cls, data)
        await self.admit(obj)
        if dry_run(request):
            if await self._exists(t.cls, obj.metadata.name, t.namespace):
                raise ApiError(409, f"{t.cls.KIND} {obj.metadata.name!r} already exists",
                               reason="AlreadyExists")
            would = semantics.prepare_create(obj)
            note(request, obj=would)
            return object_response(would, status=201)
        created = await self.store.create(obj)
        note(request, obj=created)
        return object_response(created, status=201)

    def _would_update(self, request: web.Request, t: Target, obj: Resource,
                      stored: Resource) -> web.Response:
        """A dry-run update: the object the store would write, by the store's own rules."""
        return object_response(self._would(request, t, obj, stored))

    @staticmethod
    def _would(request: web.Request, t: Target, obj: Resource, stored: Resource) -> Resource:
        if t.subresource == "status":
            would = semantics.prepare_status(obj, stored)
        else:
            would, _ = semantics.prepare_update(obj, stored)
        note(request, obj=would)
        return would

    async def _exists(self, cls: type[Resource], name: str, namespace: str | None) -> bool:
        try:
            await self.store.get(cls, name, namespace)
        except NotFound:
            return False
        return True

    async def update(self, request: web.Request) -> web.Response:
        t = target_of(request)
        authorize(request, "update", t)
        assert t.name is not None
        note(request, name=t.name)
        data = check_identity(
            await read_json(request), t.cls, namespace=t.namespace, name=t.name
        )
        if not data["metadata"].get("resourceVersion"):
            raise ApiError(
                422,
                f"{t.cls.KIND} {t.name!r} is invalid: metadata.resourceVersion: must be "
                "specified for an update",
                causes=[{"field": "metadata.resourceVersion", "message": "must be specified"}],
            )
        obj = to_object(t.cls, data)
        if t.subresource == "status":
            if dry_run(request):
                stored = await self.store.get(t.cls, t.name, t.namespace)
                return self._would_update(request, t, obj, stored)
            out = await self.store.update_status(obj)
        else:
            stored = await self.store.get(t.cls, t.name, t.namespace)
            if t.cls.SECRET_FIELDS:
                keep_secrets(data, to_dict(stored), t.cls)
            if controlled(t.cls):
                keep_controller_fields(data, stored, data)
            if t.cls.SECRET_FIELDS or controlled(t.cls):
                obj = to_object(t.cls, data)
            await self.admit(obj, stored)
            if dry_run(request):
                return self._would_update(request, t, obj, stored)
            out = await self.store.update(obj)
        note(request, obj=out)
        return object_response(out)

    async def patch(self, request: web.Request) -> web.Response:
        t, patch = await _merge_patch(request)
        return object_response(await self._patched(request, t, lambda _: patch))

    async def _patched(self, request: web.Request, t: Target,
                       patch_for: Callable[[Resource], dict[str, Any]]) -> Resource:
        """Merge ``patch_for(stored)`` into the stored object and write it as an update of
        ``t`` (the object or its status), or answer what would be written (dry run).
        Retried on a conflict with a concurrent writer unless the patch holds a
        resourceVersion (a precondition: then the conflict is the answer)."""
        assert t.name is not None
        for attempt in range(PATCH_RETRIES):
            stored = await self.store.get(t.cls, t.name, t.namespace)
            patch = patch_for(stored)
            meta = patch.get("metadata")
            precondition = meta.get("resourceVersion") if isinstance(meta, dict) else None
            base = to_dict(stored)
            merged = merge_patch(base, patch)
            check_identity(merged, t.cls, namespace=t.namespace, name=t.name)
            keep_secrets(merged, base, t.cls)
            if t.subresource != "status" and controlled(t.cls):
                keep_controller_fields(merged, stored, patch)
            merged["metadata"]["resourceVersion"] = (
                precondition or stored.metadata.resource_version
            )
            obj = to_object(t.cls, merged)
            if dry_run(request):
                if t.subresource != "status":
                    await self.admit(obj, stored)
                return self._would(request, t, obj, stored)
            try:
                if t.subresource == "status":
                    out = await self.store.update_status(obj)
                else:
                    await self.admit(obj, stored)
                    out = await self.store.update(obj)
            except Conflict:
                if precondition or attempt + 1 >= PATCH_RETRIES:
                    raise
                continue
            note(request, obj=out)
            return out
        raise AssertionError("unreachable")

    # --- scale ------------------------------------------------------------------------------

    async def get_scale(self, request: web.Request) -> web.Response:
        t = target_of(request)
        authorize(request, "get", t)
        assert t.name is not None
        return json_response(scale_of(await self.store.get(t.cls, t.name, t.namespace)))

    async def update_scale(self, request: web.Request) -> web.Response:
        """PUT of a Scale: the object's spec.replicas set to the Scale's, as an update of the
        object (authorized as one, admitted, audited); a resourceVersion in the Scale is a
        precondition (409 when stale), none makes it unconditional, as kube-apiserver."""
        t = target_of(request)
        authorize(request, "update", t)
        assert t.name is not None
        note(request, name=t.name)
        replicas, rv = read_scale(await read_json(request), t.cls,
                                  namespace=t.namespace, name=t.name)
        out = await self._patched(request, t, lambda _: _replicas_patch(replicas, rv))
        return json_response(scale_of(out))

    async def patch_scale(self, request: web.Request) -> web.Response:
        """A merge patch of the Scale (``{"spec": {"replicas": 3}}``), applied to the current
        Scale and written as ``update_scale`` writes one."""
        t, patch = await _merge_patch(request)
        assert t.name is not None
        name, ns = t.name, t.namespace

        def patch_for(stored: Resource) -> dict[str, Any]:
            # The merged Scale carries the stored resourceVersion unless the patch gave one:
            # only the patch's is a precondition.
            replicas, _ = read_scale(merge_patch(scale_of(stored), patch), t.cls,
                                     namespace=ns, name=name, patched=True)
            meta = patch.get("metadata")
            rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
            return _replicas_patch(replicas, rv or None)

        return json_response(scale_of(await self._patched(request, t, patch_for)))

    async def delete(self, request: web.Request) -> web.Response:
        t = target_of(request)
        authorize(request, "delete", t)
        assert t.name is not None
        note(request, name=t.name)
        rv = request.query.get("resourceVersion") or None
        if request.can_read_body:
            opts = await read_json(request)
            pre = opts.get("preconditions") if isinstance(opts, dict) else None
            if isinstance(pre, dict) and pre.get("resourceVersion"):
                rv = str(pre["resourceVersion"])
        await self.guard_delete(t.cls, t.name, t.namespace)
        if dry_run(request):
            marked, gone = semantics.prepare_delete(
                await self.store.get(t.cls, t.name, t.namespace), rv)
            remaining = None if gone else marked
        else:
            remaining = await self.store.delete(t.cls, t.name, t.namespace, resource_version=rv)
        if remaining is not None:
            note(request, obj=remaining)
            return object_response(remaining, status=202)
        details = {"name": t.name, "group": GROUP, "kind": t.plural}
        return json_response(
            status_body(200, f"{t.cls.KIND} {t.name!r} deleted", reason="", details=details)
        )


def _replicas_patch(replicas: int, resource_version: str | None) -> dict[str, Any]:
    """The merge patch of a scalable object that a Scale write is."""
    patch: dict[str, Any] = {"spec": {"replicas": replicas}}
    if resource_version:
        patch["metadata"] = {"resourceVersion": resource_version}
    return patch


__all__ = ["ResourceHandlers", "StoreError", "Target", "wire"]
