"""Who owns which part of an object shared by management and a region, as pure functions.

An object of region R exists in two stores: management's and R's. Field ownership decides
what each direction of the link copies, so concurrent writes on both sides (including writes
made while the link was down) merge instead of overwriting each other:

- *management-homed* kinds (everything users create: Cluster, Machine, BareMetalHost, ...):
  management owns metadata and spec (including a deletion request); the region owns
  ``status``, ``metadata.finalizers`` and the annotations in ``REGION_ANNOTATIONS`` (its
  controllers write them: a reboot a health check asks of a Machine's provider, and the
  provider's answers).
- *region-homed* kinds (made by regional controllers: LCMCluster, LCMMachine): the region
  owns everything; management may only request deletion.
- *global* objects (releases): management owns them whole; they only flow down, and
  management's copy replaces one the region made itself under the same name.

Neither direction resurrects: an object is only created on the far side by its home, and a
removal (by uid) on one side removes it on the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import msgspec

from shared.models import (
    GLOBAL_REGION,
    REBOOT_DONE_ANNOTATION,
    REBOOT_OFF_ANNOTATION,
    REBOOT_REQUEST_ANNOTATION,
    Resource,
    encode,
)

R = TypeVar("R", bound=Resource)

REGION_HOMED_KINDS: frozenset[str] = frozenset({"LCMCluster", "LCMMachine"})
REGION_ANNOTATIONS: frozenset[str] = frozenset({
    REBOOT_REQUEST_ANNOTATION, REBOOT_OFF_ANNOTATION, REBOOT_DONE_ANNOTATION})


@dataclass(frozen=True)
class Restore:
    """Write ``obj`` as given (``KVStore.restore``), expecting the target at ``rv``."""

    obj: Resource
    rv: str | None


@dataclass(frozen=True)
class Remove:
    """Remove the target object (it has this uid): drop finalizers if it must go now."""

    obj: Resource
    force: bool


@dataclass(frozen=True)
class RequestDelete:
    """Ask the target store to delete (sets deletionTimestamp while finalizers remain)."""

    obj: Resource


@dataclass(frozen=True)
class Replace:
    """Remove ``old`` (another object under the same name, matched by uid) and write ``obj``
    in its place: only for global objects, which management owns whole."""

    old: Resource
    obj: Resource


Action = Restore | Remove | RequestDelete | Replace | None


def same(a: Resource, b: Resource) -> bool:
    """Equal content, ignoring the store-local resourceVersion."""
    return _bytes(a) == _bytes(b)


def _bytes(obj: Resource) -> bytes:
    md = msgspec.structs.replace(obj.metadata, resource_version=None)
    return encode(msgspec.structs.replace(obj, metadata=md))


def _with(base: R, *, status_from: Resource | None = None, finalizers: list[str] | None = None,
          deletion: str | None = None, annotations_from: Resource | None = None) -> R:
    md = base.metadata
    annotations = md.annotations
    if annotations_from is not None:
        annotations = {k: v for k, v in md.annotations.items() if k not in REGION_ANNOTATIONS}
        annotations |= {k: v for k, v in annotations_from.metadata.annotations.items()
                        if k in REGION_ANNOTATIONS}
    md = msgspec.structs.replace(
        md,
        finalizers=list(md.finalizers if finalizers is None else finalizers),
        deletion_timestamp=md.deletion_timestamp or deletion,
        annotations=annotations,
    )
    out = msgspec.structs.replace(base, metadata=md)
    if status_from is not None and hasattr(out, "status"):
        out = msgspec.structs.replace(out, status=status_from.status)  # type: ignore[call-arg]
    return out


def _write(merged: R, target: R) -> Action:
    if same(merged, target):
        return None
    if merged.deleting and not merged.metadata.finalizers:
        return Remove(target, force=True)
    return Restore(merged, target.metadata.resource_version)


def is_global(obj: Resource) -> bool:
    return obj.region() == GLOBAL_REGION


def down(mgmt: Resource | None, local: Resource | None, *, uid: str,
         region_homed: frozenset[str] = REGION_HOMED_KINDS) -> Action:
    """What to do in the regional store after management changed the object ``uid``."""
    if mgmt is None:
        if local is None or local.metadata.uid != uid or local.kind in region_homed:
            return None
        return RequestDelete(local) if not local.deleting else None
    if local is None:
        if mgmt.kind in region_homed or mgmt.deleting:
            return None  # never resurrect: only the home creates
        return Restore(mgmt, None)
    if local.metadata.uid != mgmt.metadata.uid:
        if is_global(mgmt) and not mgmt.deleting:
            # e.g. a release the regional release service seeded before management's arrived
            return Replace(local, mgmt)
        return None  # a different object under the same name: left to its owners
    if is_global(mgmt):
        return _write(mgmt, local)
    if mgmt.kind in region_homed:
        if mgmt.deleting and not local.deleting:
            return RequestDelete(local)
        return None
    merged = _with(mgmt, status_from=local, finalizers=local.metadata.finalizers,
                   deletion=local.metadata.deletion_timestamp, annotations_from=local)
    return _write(merged, local)


def up(local: Resource | None, mgmt: Resource | None, *, uid: str,
       region_homed: frozenset[str] = REGION_HOMED_KINDS) -> Action:
    """What to do in management's store after the region changed the object ``uid``."""
    if local is None:
        if mgmt is None or mgmt.metadata.uid != uid or is_global(mgmt):
            return None
        return Remove(mgmt, force=True)
    if is_global(local):
        return None
    if mgmt is None:
        return Restore(local, None) if local.kind in region_homed and not local.deleting else None
    if mgmt.metadata.uid != local.metadata.uid:
        return None
    if local.kind in region_homed:
        merged = _with(local, deletion=mgmt.metadata.deletion_timestamp)
    else:
        merged = _with(mgmt, status_from=local, finalizers=local.metadata.finalizers,
                       annotations_from=local)
    return _write(merged, mgmt)
