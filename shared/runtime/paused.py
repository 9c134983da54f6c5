"""Paused objects: every controller leaves them alone (like Cluster API's ``paused``).

An object is paused when its metadata carries the ``kaas.containercloud.dev/paused``
annotation (any value; the bootstrap pivot writes ``bootstrap-pivot``), or when it is a
Cluster with ``spec.paused``; and so is everything that belongs to a paused object: to its
Machine (``spec.machine``, e.g. an LCMMachine, whose reconciler writes the Machine's
status) or to its Cluster (``spec.cluster``, else a Cluster owner). The controller runtime
checks this before calling a reconciler, so no reconciler needs its own check. Unpausing
an object is a write of that object, so its event reconciles it at once; what is paused
through its Machine or Cluster is re-checked every ``PARENT_PAUSED_RECHECK`` seconds.
"""

from __future__ import annotations

from shared.models import Cluster, Machine, Resource
from shared.store import Invalid, NotFound, Store, prefetch

PAUSED_ANNOTATION = "kaas.containercloud.dev/paused"
PARENT_PAUSED_RECHECK = 5.0


def is_paused(obj: Resource) -> bool:
    """The object itself is paused (annotation, or a Cluster's ``spec.paused``)."""
    if PAUSED_ANNOTATION in obj.metadata.annotations:
        return True
    return isinstance(obj, Cluster) and obj.spec.paused


def _spec_ref(obj: Resource, field: str) -> str | None:
    name = getattr(getattr(obj, "spec", None), field, None)
    return name if isinstance(name, str) and name else None


def parents(obj: Resource) -> list[tuple[type[Resource], str]]:
    """The Machine and the Cluster an object belongs to (kind, name; same namespace)."""
    out: list[tuple[type[Resource], str]] = []
    machine = _spec_ref(obj, "machine")
    if machine and not isinstance(obj, Machine):
        out.append((Machine, machine))
    cluster = _spec_ref(obj, "cluster") or next(
        (o.name for o in obj.metadata.owner_references if o.kind == "Cluster"), None)
    if cluster and not isinstance(obj, Cluster):
        out.append((Cluster, cluster))
    return out


async def paused_by(store: Store, kind: type[Resource], name: str,
                    namespace: str | None) -> str | None:
    """Why the object is paused ("object", or the paused parent's kind), or None. A
    missing object or parent is not paused: the reconciler deals with absence; nor is a
    request naming no single object (e.g. a "recompute all" sentinel): the reconciler
    checks each object it then reads with ``is_paused``. Inside a ``prefetch.scope()`` the
    objects read are offered to the reconcile's own first reads of them."""
    try:
        obj = await store.get(kind, name, namespace)
    except (NotFound, Invalid):
        return None
    if is_paused(obj):
        return "object"
    prefetch.offer(obj)
    for parent_kind, parent in parents(obj):
        # The parent as this process's cache last saw it, where it keeps one (as Cluster
        # API reads the paused Cluster through its cached client): a pause written a moment
        # ago may be missed, as by a reconcile that started a moment earlier. Not offered
        # to the reconcile: its own read of the parent must see every write finished
        # before it started, and no event of the parent would wake it for a later one.
        cached = store.cached(parent_kind, parent, obj.metadata.namespace, at_least=0,
                              shared=True)
        if cached is not None:
            if is_paused(cached):
                return parent_kind.KIND
            continue
        try:
            found = await store.get(parent_kind, parent, obj.metadata.namespace)
        except NotFound:
            continue
        if is_paused(found):
            return parent_kind.KIND
        prefetch.offer(found)
    return None
