"""Write rules of the Kubernetes API server, for backends that must apply them themselves.

The Kubernetes backend gets these from the API server; the embedded JetStream KV backend
calls these functions so both pass one contract suite.
"""

from __future__ import annotations

import re
import uuid
from typing import TypeVar

import msgspec

from shared.models import Resource, Status, now
from shared.store.errors import Conflict, Invalid

R = TypeVar("R", bound=Resource)

_enc = msgspec.json.Encoder()


def _spec_bytes(obj: Resource) -> bytes:
    return _enc.encode(getattr(obj, "spec", None))


def _fresh_status(obj: Resource) -> Status:
    return type(obj.status)()  # type: ignore[attr-defined]


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def check_namespace(cls: type[Resource], namespace: str | None) -> None:
    """Namespaces are DNS labels, as in Kubernetes: no dots, so ``<Kind>.<ns>.<name>``
    keys can never make two (namespace, name) pairs address one object."""
    if cls.NAMESPACED and not namespace:
        raise Invalid(f"{cls.KIND} is namespaced: metadata.namespace is required",
                      field="metadata.namespace")
    if not cls.NAMESPACED and namespace:
        raise Invalid(f"{cls.KIND} is cluster-scoped: metadata.namespace must be empty",
                      field="metadata.namespace")
    if namespace and not _DNS_LABEL.match(namespace):
        raise Invalid(f"invalid namespace {namespace!r}: must be a DNS label "
                      "(lower-case letters, digits and '-', at most 63)",
                      field="metadata.namespace")


def check_name(cls: type[Resource], name: str) -> None:
    if not _NAME.match(name or ""):
        raise Invalid(f"invalid {cls.KIND} name {name!r}: must be a DNS subdomain "
                      "(lower-case letters, digits, '-' and '.')", field="metadata.name")


def prepare_create(obj: R) -> R:
    check_namespace(type(obj), obj.metadata.namespace)
    check_name(type(obj), obj.metadata.name)
    if obj.metadata.resource_version:
        raise Invalid("metadata.resourceVersion must not be set on create",
                      field="metadata.resourceVersion")
    md = msgspec.structs.replace(
        obj.metadata,
        uid=str(uuid.uuid4()),
        generation=1,
        creation_timestamp=now(),
        deletion_timestamp=None,
    )
    return msgspec.structs.replace(obj, metadata=md, status=_fresh_status(obj))


def _check_rv(new: Resource, stored: Resource) -> None:
    rv = new.metadata.resource_version
    if rv and rv != stored.metadata.resource_version:
        raise Conflict(
            f"{stored.kind} {stored.metadata.name!r}: the object has been modified "
            f"(resourceVersion {rv} != {stored.metadata.resource_version})"
        )
    if new.metadata.uid and new.metadata.uid != stored.metadata.uid:
        raise Conflict(f"{stored.kind} {stored.metadata.name!r}: uid precondition failed")


def prepare_update(new: R, stored: R) -> tuple[R, bool]:
    """Return the object to write and whether it should be removed instead.

    Spec and metadata come from ``new``; status, uid, timestamps from ``stored``.
    """
    _check_rv(new, stored)
    if stored.deleting and len(new.metadata.finalizers) > len(stored.metadata.finalizers):
        raise Invalid("cannot add finalizers to an object being deleted",
                      field="metadata.finalizers")
    generation = stored.metadata.generation
    if _spec_bytes(new) != _spec_bytes(stored):
        if stored.deleting:
            raise Invalid("spec is immutable while the object is being deleted", field="spec")
        generation += 1
    md = msgspec.structs.replace(
        new.metadata,
        uid=stored.metadata.uid,
        generation=generation,
        creation_timestamp=stored.metadata.creation_timestamp,
        deletion_timestamp=stored.metadata.deletion_timestamp,
        resource_version=stored.metadata.resource_version,
    )
    out = msgspec.structs.replace(new, metadata=md, status=stored.status)  # type: ignore[call-arg]
    remove = stored.deleting and not md.finalizers
    return out, remove


def prepare_status(new: R, stored: R) -> R:
    _check_rv(new, stored)
    return msgspec.structs.replace(stored, status=new.status)  # type: ignore[call-arg]


def prepare_delete(stored: R, resource_version: str | None) -> tuple[R, bool]:
    """Return (object, remove): mark for deletion while finalizers remain."""
    if resource_version and resource_version != stored.metadata.resource_version:
        raise Conflict(f"{stored.kind} {stored.metadata.name!r}: resourceVersion mismatch")
    if not stored.metadata.finalizers:
        return stored, True
    if stored.deleting:
        return stored, False
    md = msgspec.structs.replace(stored.metadata, deletion_timestamp=now())
    return msgspec.structs.replace(stored, metadata=md), False
