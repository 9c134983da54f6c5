"""Request body handling: JSON parsing, route/body consistency, secrets.

Everything here runs before a write, so a rejected payload never reaches the store.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from services.api.errors import ApiError
from shared.models import API_VERSION, Resource, ValidationError, convert

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


def _dig(node: Any, path: str) -> Any:
    for p in path.split("."):
        node = node.get(p) if isinstance(node, dict) else None
    return node
