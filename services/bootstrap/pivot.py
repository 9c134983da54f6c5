"""Move (pivot) every object of the bootstrap store into the management store.

Owners move before the objects they own, so management's garbage collector never sees an
orphan. Each copy is written with ``KVStore.restore`` (uid, creationTimestamp, generation,
owner references, finalizers and status preserved) and lands *paused*: it carries the
``kaas.containercloud.dev/paused`` annotation and a Cluster has ``spec.paused`` set, so
management's controllers leave the half-moved tree alone (the controller runtime skips
paused objects: ``shared.runtime.paused``). The bootstrap set's own
controllers are not running during the move (the driver has finished). Once everything is
across, each copy is restored to its exact original content, which unpauses it.

The simulated provider's node records move too (``move_nodes``, before the objects):
from the bootstrap set's ``bootstrap-simulated-nodes`` bucket into management's
``<prefix>-simulated-nodes``, keyed by Machine uid like the provider keys them, so once a
moved Machine is unpaused management's provider finds its node instead of making one.

Progress is saved after every object and node; re-running skips nothing and duplicates
nothing, because restoring an object whose uid is already there overwrites it in place and
a node record whose Machine uid is already there is kept as it is.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import msgspec

from services.bootstrap.state import BootstrapError, BootstrapState, ObjectRef
from services.providers.simulated.nodes import NodeTable
from shared.models import ALL_KINDS, Cluster, Resource
from shared.runtime.paused import PAUSED_ANNOTATION
from shared.store import AlreadyExists, Conflict, NotFound, Store
from shared.store.kv import KVStore

log = logging.getLogger(__name__)

PAUSED_BY = "bootstrap-pivot"
UNPAUSE_ATTEMPTS = 5
KINDS: dict[str, type[Resource]] = {k.KIND: k for k in ALL_KINDS}


class InjectedFailure(BootstrapError):
    """Raised by tests (and ``CCLOUD_BOOTSTRAP_FAIL_AFTER``) to interrupt a pivot."""


def ref_of(obj: Resource) -> ObjectRef:
    md = obj.metadata
    return ObjectRef(kind=obj.kind, name=md.name, namespace=md.namespace, uid=md.uid or "")


async def everything(store: Store) -> list[Resource]:
    """Every object of every kind, owners before the objects they own."""
    objs: list[Resource] = []
    for cls in ALL_KINDS:
        objs.extend(await store.list_all(cls))
    return owners_first(objs)


def owners_first(objs: list[Resource]) -> list[Resource]:
    """``objs`` with every owner before the objects it owns, so a garbage collector never
    sees an orphan among objects being written one by one."""
    by_uid = {o.metadata.uid: o for o in objs}
    ordered: list[Resource] = []
    placed: set[str] = set()

    def place(o: Resource, trail: frozenset[str]) -> None:
        uid = o.metadata.uid or ""
        if uid in placed or uid in trail:
            return
        for ref in o.metadata.owner_references:
            owner = by_uid.get(ref.uid)
            if owner is not None:
                place(owner, trail | {uid})
        placed.add(uid)
        ordered.append(o)

    for o in objs:
        place(o, frozenset())
    return ordered


def paused(obj: Resource) -> Resource:
    md = msgspec.structs.replace(
        obj.metadata, annotations={**obj.metadata.annotations, PAUSED_ANNOTATION: PAUSED_BY}
    )
    out = msgspec.structs.replace(obj, metadata=md)
    if isinstance(out, Cluster):
        out = msgspec.structs.replace(out, spec=msgspec.structs.replace(out.spec, paused=True))
    return out


def needs_restore(store: Store) -> KVStore:
    if not isinstance(store, KVStore):
        raise BootstrapError(
            "the management store must be the embedded KV store: the Kubernetes API assigns "
            "uids itself, so a pivot into it cannot preserve uids and owner references"
        )
    return store


async def move(
    source: Store,
    dest: Store,
    state: BootstrapState,
    *,
    save: Callable[[BootstrapState], None],
    fail_after: int | None = None,
) -> list[Resource]:
    """Copy every object (paused), then unpause all of them; returns the originals."""
    target = needs_restore(dest)
    objs = await everything(source)
    done = {r.uid for r in state.moved}
    if fail_after == 0 and objs:
        raise InjectedFailure("injected failure after moving 0 objects")
    copied = 0
    async for obj in restore_paused(target, objs, "management"):
        if obj.metadata.uid not in done:
            state.moved.append(ref_of(obj))
            done.add(obj.metadata.uid)
            save(state)
        copied += 1
        if fail_after is not None and fail_after <= copied < len(objs):
            raise InjectedFailure(f"injected failure after moving {copied} objects")
    await unpause(target, objs)
    return objs


async def restore_paused(
    target: KVStore, objs: list[Resource], where: str
) -> AsyncIterator[Resource]:
    """Write each object (owners first, as ``everything`` orders them) paused, yielding it
    once written. Re-running over the same objects overwrites them in place."""
    for obj in objs:
        try:
            await target.restore(paused(obj))
        except AlreadyExists as e:
            raise BootstrapError(
                f"{where} already has a different {obj.kind} {obj.metadata.name!r}: {e}"
            ) from None
        yield obj


async def unpause(target: KVStore, objs: list[Resource]) -> None:
    """Back to each object's exact original content, which unpauses it. A write that
    slips in between (a service that does not look at the pause, e.g. an agent's report)
    is written over: the restored content is what was asked for."""
    for obj in objs:
        for attempt in range(UNPAUSE_ATTEMPTS):
            current = await target.get(type(obj), obj.metadata.name, obj.metadata.namespace)
            try:
                await target.restore(obj, resource_version=current.metadata.resource_version)
                break
            except Conflict:
                if attempt == UNPAUSE_ATTEMPTS - 1:
                    raise


async def move_nodes(
    source: NodeTable,
    dest: NodeTable,
    state: BootstrapState,
    *,
    save: Callable[[BootstrapState], None],
) -> int:
    """Copy every provider node record into management; returns how many are there."""
    done = set(state.nodes)
    for node in await source.all():
        await dest.create(node)  # keeps a record already there (a resumed move)
        if node.machine_uid not in done:
            state.nodes.append(node.machine_uid)
            done.add(node.machine_uid)
            save(state)
    return len(done)


async def undo_nodes(dest: NodeTable, state: BootstrapState) -> int:
    """Remove from management the node records the pivot copied there (by Machine uid)."""
    removed = 0
    for uid in state.nodes:
        if await dest.get(uid) is not None:
            await dest.remove(uid)
            removed += 1
    return removed


async def undo(dest: Store, state: BootstrapState) -> int:
    """Remove from management what the pivot put there (matched by uid), owned first."""
    removed = 0
    for ref in reversed(state.moved):
        cls = KINDS.get(ref.kind)
        if cls is None:
            continue
        try:
            current = await dest.get(cls, ref.name, ref.namespace)
        except NotFound:
            continue
        if current.metadata.uid != ref.uid:
            continue  # not ours: someone else's object under the same name
        if current.metadata.finalizers:
            md = msgspec.structs.replace(current.metadata, finalizers=[])
            current = await dest.update(msgspec.structs.replace(current, metadata=md))
        try:
            await dest.delete(cls, ref.name, ref.namespace)
        except NotFound:
            pass
        removed += 1
    return removed
