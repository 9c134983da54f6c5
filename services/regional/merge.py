"""Who owns which part of an object shared by management and a region, as pure functions.

An object of region R exists in two stores: management's and R's. Field ownership decides
what each direction of the link copies, so concurrent writes on both sides (including writes
made while the link was down) merge instead of overwriting each other:

- *management-homed* kinds (everything users create: Cluster, Machine, BareMetalHost, ...):
  management owns metadata and spec (including a deletion request), except what the
  region's controllers write there; the region owns ``status``, ``metadata.finalizers`` and
  each kind's controller fields (``Resource.CONTROLLER_SPEC``/``_LABELS``/``_ANNOTATIONS``):

  ============== ============================================ ==========================
  kind           region-owned field                           written by
  ============== ============================================ ==========================
  Machine        label ``kaas.containercloud.dev/cluster``    LCM (= ``spec.cluster``)
  Machine        annotation ``providers.kaas.containercloud   cloud providers (the
                 .dev/target``                                credential of the node)
  Machine        annotations ``kaas.containercloud.dev/       LCM's health check and
                 reboot-request``, ``-powered-off``,          graceful reboots, the
                 ``-done``, ``-graceful``                     provider's answers
  BareMetalHost  ``spec.consumer``, ``spec.online``, label    the bare-metal provider
                 ``kaas.containercloud.dev/machine``          (claim and release)
  ============== ============================================ ==========================

  The region's value of such a field goes up to management, and management's never
  overwrites it going down (a claimed host keeping its consumer through a user's label
  edit at management; without it the provider would claim a second host). The region's
  set of a kind's controller keys replaces management's, so a removal goes up too.
  ``metadata.generation`` follows the merged spec: the higher of the two sides', plus one
  when the merged spec is new to the side(s) holding it, so it never goes back and both
  sides end with the same.
- *region-homed* kinds (made by regional controllers: LCMCluster, LCMMachine): the region
  owns everything; management may only request deletion.
- management-homed objects a regional controller made (a MachinePool's Machines, which
  carry the pool's label): they go up whole when made, and from then on are shared as
  any object of their kind (users edit them at management; the region deletes them).
- *global* objects (releases): management owns them whole; they only flow down, and
  management's copy replaces one the region made itself under the same name.

Neither direction resurrects: an object is only created on the far side by its home, and a
removal (by uid) on one side removes it on the other. A newly created object goes down
whole, controller fields included: the region owns them from then on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import msgspec

from shared.models import GLOBAL_REGION, POOL_LABEL, Resource

R = TypeVar("R", bound=Resource)

REGION_HOMED_KINDS: frozenset[str] = frozenset({"LCMCluster", "LCMMachine"})


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


# Sorted keys: a merge rebuilds labels and annotations, which must not differ by key order.
_encoder = msgspec.json.Encoder(order="deterministic")


def same(a: Resource, b: Resource) -> bool:
    """Equal content, ignoring the store-local resourceVersion and the order of keys."""
    return _bytes(a) == _bytes(b)


def _bytes(obj: Resource) -> bytes:
    md = msgspec.structs.replace(obj.metadata, resource_version=None)
    return _encoder.encode(msgspec.structs.replace(obj, metadata=md))


def _with(base: R, *, status_from: Resource | None = None, finalizers: list[str] | None = None,
          deletion: str | None = None) -> R:
    md = base.metadata
    md = msgspec.structs.replace(
        md,
        finalizers=list(md.finalizers if finalizers is None else finalizers),
        deletion_timestamp=md.deletion_timestamp or deletion,
    )
    out = msgspec.structs.replace(base, metadata=md)
    if status_from is not None and hasattr(out, "status"):
        out = msgspec.structs.replace(out, status=status_from.status)  # type: ignore[call-arg]
    return out


def _keys(mgmt: dict[str, str], local: dict[str, str], owned: frozenset[str]) -> dict[str, str]:
    """Management's entries except ``owned`` keys, which are the region's (present or not)."""
    if not owned:
        return mgmt
    out = {k: v for k, v in mgmt.items() if k not in owned}
    return out | {k: v for k, v in local.items() if k in owned}


def _spec(obj: Resource) -> bytes:
    return _encoder.encode(getattr(obj, "spec", None))


def _managed(mgmt: R, local: Resource, *, deletion: str | None = None) -> R:
    """A management-homed object as both sides should hold it: management's copy with what
    the region owns (status, finalizers, the kind's controller fields) from ``local``."""
    cls = type(mgmt)
    md = mgmt.metadata
    merged = msgspec.structs.replace(mgmt, metadata=msgspec.structs.replace(
        md,
        labels=_keys(md.labels, local.metadata.labels, cls.CONTROLLER_LABELS),
        annotations=_keys(md.annotations, local.metadata.annotations,
                          cls.CONTROLLER_ANNOTATIONS),
    ))
    if cls.CONTROLLER_SPEC:
        spec = msgspec.structs.replace(
            merged.spec,  # type: ignore[attr-defined]
            **{f: getattr(local.spec, f) for f in cls.CONTROLLER_SPEC})  # type: ignore[attr-defined]
        merged = msgspec.structs.replace(merged, spec=spec)  # type: ignore[call-arg]
    merged = _with(merged, status_from=local, finalizers=local.metadata.finalizers,
                   deletion=deletion)
    # Each side's store bumps generation on its own spec writes: take the higher, and one
    # more when that side's spec is not the merged one (both sides changed the spec).
    top = max(mgmt.metadata.generation, local.metadata.generation)
    spec = _spec(merged)
    if any(o.metadata.generation == top and _spec(o) != spec for o in (mgmt, local)):
        top += 1
    if top != merged.metadata.generation:
        merged = msgspec.structs.replace(
            merged, metadata=msgspec.structs.replace(merged.metadata, generation=top))
    return merged


def _write(merged: R, target: R) -> Action:
    if same(merged, target):
        return None
    if merged.deleting and not merged.metadata.finalizers:
        return Remove(target, force=True)
    return Restore(merged, target.metadata.resource_version)


def made_in_region(obj: Resource) -> bool:
    """A management-homed object a regional controller made (a pool's Machine)."""
    return POOL_LABEL in obj.metadata.labels


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
    return _write(_managed(mgmt, local, deletion=local.metadata.deletion_timestamp), local)


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
        made_here = local.kind in region_homed or made_in_region(local)
        return Restore(local, None) if made_here and not local.deleting else None
    if mgmt.metadata.uid != local.metadata.uid:
        return None
    if local.kind in region_homed:
        merged = _with(local, deletion=mgmt.metadata.deletion_timestamp)
    else:
        merged = _managed(mgmt, local)
    return _write(merged, mgmt)
