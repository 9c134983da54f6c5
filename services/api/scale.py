"""The scale subresource's object: an ``autoscaling/v1`` ``Scale``, as kube-apiserver serves
it for a CRD with ``subresources.scale`` (``shared/models/crd.py``).

A scalable kind (``Resource.SCALE``) maps onto a Scale as the CRD's paths say:
``spec.replicas`` <-> Scale ``spec.replicas``, ``status.replicas`` -> Scale
``status.replicas``, ``status.selector`` -> Scale ``status.selector``; its metadata is the
object's name, namespace, uid, resourceVersion and creationTimestamp. A Scale written (PUT,
or a merge patch applied to the current Scale) sets only the object's ``spec.replicas``;
its ``status`` is ignored, and its ``metadata.resourceVersion``, when given, is the
precondition of the write. Everything else about the write is the object's own update
(``services/api/resources.py``).
"""

from __future__ import annotations

import json
from typing import Any

from services.api.errors import ApiError
from shared.models import Resource

SCALE_API_VERSION = "autoscaling/v1"
SCALE_KIND = "Scale"
SCALE_GROUP = "autoscaling"
_TOP = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})


def scale_of(obj: Resource) -> dict[str, Any]:
    """The Scale of a scalable object. ``spec.replicas`` is always written (kube-apiserver
    leaves a 0 out, which every client reads as 0), so a Scale read can be written back."""
    meta = obj.metadata
    metadata: dict[str, Any] = {"name": meta.name}
    if meta.namespace:
        metadata["namespace"] = meta.namespace
    for key, value in (("uid", meta.uid), ("resourceVersion", meta.resource_version),
                       ("creationTimestamp", meta.creation_timestamp)):
        if value:
            metadata[key] = value
    spec = obj.spec  # type: ignore[attr-defined]
    status = obj.status  # type: ignore[attr-defined]
    scale_status: dict[str, Any] = {"replicas": int(getattr(status, "replicas", 0) or 0)}
    selector = getattr(status, "selector", "") or ""
    if selector:
        scale_status["selector"] = selector
    return {
        "kind": SCALE_KIND,
        "apiVersion": SCALE_API_VERSION,
        "metadata": metadata,
        "spec": {"replicas": int(spec.replicas)},
        "status": scale_status,
    }


def _invalid(name: str, field: str, message: str, reason: str = "FieldValueInvalid") -> ApiError:
    """kube-apiserver's 422 for a Scale that fails validation."""
    return ApiError(
        422,
        f'{SCALE_KIND}.{SCALE_GROUP} "{name}" is invalid: {field}: {message}',
        reason="Invalid",
        details={"name": name, "group": SCALE_GROUP, "kind": SCALE_KIND},
        causes=[{"reason": reason, "message": message, "field": field}],
    )


def _shown(value: Any) -> str:
    try:
        return json.dumps(value)[:100]
    except (TypeError, ValueError):
        return repr(value)[:100]


def read_scale(
    data: Any, cls: type[Resource], *, namespace: str | None, name: str, patched: bool = False,
) -> tuple[int, str | None]:
    """(spec.replicas, resourceVersion precondition or None) of a Scale written to the
    ``name`` object (``patched``: the current Scale with a merge patch applied); 400 for a
    body that is not a Scale of it, 422 for bad replicas."""
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object (an autoscaling/v1 Scale)")
    kind = data.get("kind", SCALE_KIND)
    api_version = data.get("apiVersion", SCALE_API_VERSION)
    if kind != SCALE_KIND or api_version != SCALE_API_VERSION:
        raise ApiError(400, f"the body is a {kind} of {api_version}: the scale subresource "
                            f"takes a {SCALE_KIND} of {SCALE_API_VERSION}")
    unknown = sorted(str(k) for k in data if k not in _TOP)
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r} in the Scale")
    meta = data.get("metadata", {})
    if not isinstance(meta, dict):
        raise ApiError(400, "metadata of the Scale must be an object")
    if meta.get("name", name) != name:
        raise ApiError(400, f"the name of the object ({meta.get('name')!r}) does not match "
                            f"the name on the URL ({name!r})")
    body_ns = meta.get("namespace")
    if namespace is not None and body_ns not in (None, "", namespace):
        raise ApiError(400, f"the namespace of the provided object ({body_ns!r}) does not "
                            f"match the namespace sent on the request ({namespace!r})")
    if namespace is None and body_ns:
        raise ApiError(400, f"{cls.KIND} is cluster-scoped: metadata.namespace must be empty")
    rv = meta.get("resourceVersion")
    if rv is not None and not isinstance(rv, str):
        raise ApiError(400, "metadata.resourceVersion must be a string")
    spec = data.get("spec")
    if spec is not None and not isinstance(spec, dict):
        raise _invalid(name, "spec", f"Invalid value: {_shown(spec)}: must be an object")
    for key in sorted(spec or {}):
        if key != "replicas":  # a typo of replicas is not a missing (zero) count
            raise _invalid(name, f"spec.{key}", "field not declared in the schema",
                           reason="FieldValueNotSupported")
    # Left out of a PUT is 0, as kube-apiserver reads it: client-go's Scale (what
    # autoscalers and `kubectl scale --current-replicas` PUT) omits a zero. The current
    # Scale always has a count, so one missing after a merge patch was deleted by it (null).
    replicas = (spec or {}).get("replicas", None if patched else 0)
    if replicas is None:
        raise _invalid(name, "spec.replicas", "Required value", reason="FieldValueRequired")
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise _invalid(name, "spec.replicas",
                       f"Invalid value: {_shown(replicas)}: must be an integer")
    if replicas < 0:
        raise _invalid(name, "spec.replicas",
                       f"Invalid value: {replicas}: must be greater than or equal to 0")
    return replicas, rv or None
