"""Request body handling: JSON parsing, route/body consistency, secrets, controller fields.

Everything here runs before a write, so a rejected payload never reaches the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
from aiohttp import web

from services.api.errors import ApiError
from shared.models import API_VERSION, Resource, ValidationError, convert, to_dict

JSON_TYPES = frozenset({"application/json"})
MERGE_PATCH = "application/merge-patch+json"
PATCH_TYPES = frozenset({MERGE_PATCH})
_BODY = web.RequestKey("decoded_body", tuple)


async def read_json(request: web.Request, *, allowed: frozenset[str] = JSON_TYPES) -> Any:
    if request.content_type not in allowed:
        raise ApiError(
            415,
            f"unsupported media type {request.content_type!r}; expected one of "
            + ", ".join(sorted(allowed)),
        )
    data, error = await decoded_body(request)
    if error is not None:
        raise ApiError(400, f"malformed JSON body: {error}")
    return data


async def decoded_body(request: web.Request) -> tuple[Any, str | None]:
    """The body parsed as JSON, or the parse error; parsed once however often asked."""
    memo = request.get(_BODY)
    if memo is None:
        try:
            memo = (msgspec.json.decode(await request.read()), None)
        except msgspec.DecodeError as e:
            memo = (None, str(e))
        request[_BODY] = memo
    return memo


def check_identity(
    data: Any,
    cls: type[Resource],
    *,
    namespace: str | None,
    name: str | None,
) -> dict[str, Any]:
    """Fill kind/apiVersion/namespace defaults and reject a body that contradicts the URL."""
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    kind = data.setdefault("kind", cls.KIND)
    api_version = data.setdefault("apiVersion", API_VERSION)
    if kind != cls.KIND:
        raise ApiError(400, f"kind {kind!r} in the body does not match the URL ({cls.KIND!r})")
    if api_version != API_VERSION:
        raise ApiError(
            400, f"apiVersion {api_version!r} in the body does not match the URL ({API_VERSION!r})"
        )
    meta = data.get("metadata")
    if not isinstance(meta, dict):
        raise ApiError.from_validation(
            ValidationError("Object missing required field `metadata`", "$.metadata"),
            kind=cls.KIND,
        )
    if namespace is not None:
        body_ns = meta.setdefault("namespace", namespace)
        if body_ns != namespace:
            raise ApiError(
                400,
                f"the namespace of the provided object ({body_ns!r}) does not match the "
                f"namespace sent on the request ({namespace!r})",
            )
    elif meta.get("namespace"):
        raise ApiError(400, f"{cls.KIND} is cluster-scoped: metadata.namespace must be empty")
    if name is not None and meta.get("name", name) != name:
        raise ApiError(
            400,
            f"the name of the object ({meta.get('name')!r}) does not match the name on the "
            f"URL ({name!r})",
        )
    if name is not None:
        meta.setdefault("name", name)
    return data


def to_object(cls: type[Resource], data: dict[str, Any]) -> Resource:
    try:
        return convert(cls, data)
    except ValidationError as e:
        raise ApiError.from_validation(e, kind=cls.KIND) from None


def keep_secrets(new: dict[str, Any], stored: dict[str, Any], cls: type[Resource]) -> None:
    """Write-only secrets: an empty secret field in ``new`` keeps the stored value.

    When ``new`` names a credential object in the secret's place (``SECRET_REFERENCES``),
    the stored secret is dropped instead, also where a merge patch carried it over: the
    writer switches to the reference and cannot have seen (or resent) the stored value.
    """
    for path in cls.SECRET_FIELDS:
        *parents, leaf = path.split(".")
        src: Any = stored.get("spec")
        dst: Any = new.get("spec")
        for p in parents:
            src = src.get(p) if isinstance(src, dict) else None
            dst = dst.get(p) if isinstance(dst, dict) else None
        if not isinstance(src, dict) or not isinstance(dst, dict):
            continue
        reference = cls.SECRET_REFERENCES.get(path)
        if reference and _dig(new.get("spec"), reference):
            if dst.get(leaf) and dst.get(leaf) == src.get(leaf):
                del dst[leaf]
            continue
        if src.get(leaf) and not dst.get(leaf):
            dst[leaf] = src[leaf]


def controlled(cls: type[Resource]) -> bool:
    """Whether controllers write parts of this kind's spec or metadata (see below)."""
    return bool(cls.CONTROLLER_SPEC or cls.CONTROLLER_LABELS or cls.CONTROLLER_ANNOTATIONS)


def keep_controller_fields(new: dict[str, Any], stored: Resource, given: Any) -> None:
    """What controllers write into a user's object (``Resource.CONTROLLER_*``: a host's
    claim, a Machine's cluster label, ...) is theirs, in every topology: a user's update
    that leaves such a field out keeps the stored value (re-applying a manifest does not
    free a claimed host), and one that gives another value is refused, so a user cannot
    clear a host's consumer (deleting its Machine frees the host). In a split deployment
    the region's value wins anyway (``services/regional/merge.py``): such a write would
    never reach the region.

    ``new`` is the object to write (the PUT body, or the merge patch applied to the stored
    object), ``given`` what the user sent (the body, or the patch).
    """
    stored_dict = to_dict(stored)
    for field, parent, key, was, default in _controller_fields(stored):
        sent = _dig(given, parent)
        if isinstance(sent, dict) and key in sent:
            value = default if sent[key] is None else sent[key]
            if value != was:
                message = (f"written by the {stored.kind} controllers, not by users (it is "
                           f"{was!r}): leave it out and it is kept")
                raise ApiError(422, f"{stored.kind} {stored.metadata.name!r} is invalid: "
                                    f"{field}: {message}",
                               causes=[{"field": field, "message": message}])
        _carry(stored_dict, new, parent, key)


def _controller_fields(obj: Resource) -> Iterator[tuple[str, str, str, Any, Any]]:
    """(field as shown, parent path, wire key, stored value, value of a null) of each
    controller field of ``obj``'s kind."""
    cls = type(obj)
    if cls.CONTROLLER_SPEC:
        spec = obj.spec  # type: ignore[attr-defined]
        defaults = {f.name: f.default for f in msgspec.structs.fields(type(spec))}
        for name in sorted(cls.CONTROLLER_SPEC):
            key = _camel(name)
            yield f"spec.{key}", "spec", key, getattr(spec, name), defaults[name]
    for where, keys, current in (("labels", cls.CONTROLLER_LABELS, obj.metadata.labels),
                                 ("annotations", cls.CONTROLLER_ANNOTATIONS,
                                  obj.metadata.annotations)):
        for key in sorted(keys):
            yield f"metadata.{where}[{key}]", f"metadata.{where}", key, current.get(key), None


def _carry(src_root: dict[str, Any], dst_root: dict[str, Any], parent: str, key: str) -> None:
    """Make ``dst_root``'s ``parent.key`` what it is in ``src_root`` (there or absent)."""
    src = _dig(src_root, parent)
    present = isinstance(src, dict) and key in src
    dst = _dig(dst_root, parent)
    if not isinstance(dst, dict):
        if not present:
            return
        head, _, leaf = parent.rpartition(".")
        holder = _dig(dst_root, head) if head else dst_root
        if not isinstance(holder, dict):
            return
        dst = holder[leaf] = {}
    if present:
        dst[key] = src[key]
    else:
        dst.pop(key, None)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _dig(node: Any, path: str) -> Any:
    for p in path.split("."):
        node = node.get(p) if isinstance(node, dict) else None
    return node
