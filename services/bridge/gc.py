"""Owner garbage collection: background cascade deletion, as Kubernetes' collector does it.

An object whose ``ownerReferences`` all name owners that no longer exist is deleted,
whatever the kinds involved; an object with at least one live owner stays. An owner
still present with finalizers pending (it has a deletionTimestamp) counts as live, so its
dependents go only once it has been removed from the store. Each dependent's own
finalizers still run, and its removal in turn orphans its own dependents.

The collector is level-triggered: a delete event of any kind only wakes a *sweep*, and
sweeps also run at start and every ``sweep_interval`` seconds, so an owner deleted while
the bridge was down (its event missed or expired) is still collected. A sweep lists every
kind once (on the embedded store from in-memory caches that catch up with what changed
since the last sweep, ``KVStore(follow=False)``: nothing is read between sweeps), builds
the set of live uids, and picks the objects none of whose owners is in it: one pass over
the objects, not a scan per deleted owner. Before deleting, each candidate's owners are
read directly by kind and name (a list taken a moment ago may predate an owner created
since), and the delete is conditional on the resourceVersion that was checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from shared.bus import Bus, ChangeEvent, Consumer
from shared.models import ALL_KINDS, BY_KIND, OwnerReference, Resource
from shared.store import Conflict, Invalid, NotFound, Store
from shared.store.kv import KVStore
from shared.tasks import cancel_all, raise_if_cancelling

log = logging.getLogger(__name__)

DEFAULT_SWEEP_SECONDS = 300.0
# After a failed sweep (store unavailable), try again this soon rather than a full interval.
RETRY_SECONDS = 5.0
# Conditional deletes of one dependent that lose a race with a writer before giving up
# until the next sweep.
DELETE_ATTEMPTS = 3


async def store_for_sweeps(store: Store) -> Store:
    """What the collector reads through: it lists every kind, but only when it sweeps, so
    on the embedded store its caches catch up then instead of decoding every write as it
    is made."""
    if isinstance(store, KVStore):
        store = store.reading_on_demand()
        await store.start()
    return store


class GarbageCollector:
    """Deletes objects whose every owner is gone; ``start``/``stop`` like every component."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        *,
        sweep_interval: float = DEFAULT_SWEEP_SECONDS,
        kinds: Iterable[type[Resource]] = ALL_KINDS,
    ) -> None:
        if sweep_interval <= 0:
            raise ValueError(f"sweep_interval must be positive, got {sweep_interval}")
        self.store = store
        self.bus = bus
        self.sweep_interval = sweep_interval
        self.kinds = tuple(kinds)
        self.collected = 0
        self.sweeps = 0
        self._consumer: Consumer | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._stopping = False
        self._wake.set()  # the start sweep
        self._task = asyncio.create_task(self._run(), name="bridge-gc")
        subjects = [self.bus.subject("*", "*", "deleted")]
        self._consumer = await self.bus.consume("bridge-gc", subjects, self.handle)

    async def stop(self) -> None:
        if self._consumer:
            await self._consumer.stop()
            self._consumer = None
        self._stopping = True
        if self._task:
            await cancel_all([self._task])
            self._task = None

    async def handle(self, ev: ChangeEvent) -> None:
        """Any removal may orphan something: ask for a sweep (many events, one sweep)."""
        if ev.type == "DELETED":
            self._wake.set()

    async def _run(self) -> None:
        wait = self.sweep_interval
        while not self._stopping:
            # A store call may swallow the cancellation of stop() (nats-py's requests in
            # Python 3.11): never start another wait or sweep once it was asked.
            raise_if_cancelling()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            raise_if_cancelling()
            self._wake.clear()
            try:
                if await self.sweep():
                    self._wake.set()  # what was removed may have orphaned more
                wait = self.sweep_interval
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the store is unreachable: retry soon
                raise_if_cancelling()
                log.warning("gc: sweep failed, retrying in %ss: %s", RETRY_SECONDS, e)
                wait = min(RETRY_SECONDS, self.sweep_interval)

    async def sweep(self) -> int:
        """One pass over every kind; returns how many objects it deleted."""
        objects: list[Resource] = []
        for cls in self.kinds:
            try:
                objects.extend(await self.store.list_all(cls))
            except NotFound:  # a kind the cluster has no CRD for: nothing of it to own
                continue
        live = {o.metadata.uid for o in objects if o.metadata.uid}
        deleted = 0
        for obj in objects:
            raise_if_cancelling()
            refs = obj.metadata.owner_references
            if not refs or obj.deleting or any(r.uid in live for r in refs):
                continue
            if await self._collect(obj):
                deleted += 1
        self.sweeps += 1
        return deleted

    async def _collect(self, obj: Resource) -> bool:
        """Delete ``obj`` if its owners are still all gone when read directly."""
        cls = type(obj)
        md = obj.metadata
        for _ in range(DELETE_ATTEMPTS):
            if obj.deleting or not obj.metadata.owner_references:
                return False
            for ref in obj.metadata.owner_references:
                if await self._owner_exists(ref, obj):
                    return False
            try:
                await self.store.delete(cls, md.name, md.namespace,
                                        resource_version=obj.metadata.resource_version)
            except NotFound:
                return False
            except Conflict:  # written meanwhile: look again at what is there now
                try:
                    fresh = await self.store.get(cls, md.name, md.namespace)
                except NotFound:
                    return False
                if fresh.metadata.uid != md.uid:
                    return False  # gone and recreated under the same name
                obj = fresh
                continue
            self.collected += 1
            owners = ", ".join(f"{r.kind} {r.name}" for r in md.owner_references)
            log.info("gc: deleting %s %s/%s (owners gone: %s)", obj.kind, md.namespace or "",
                     md.name, owners)
            return True
        self._wake.set()  # kept losing to writers: next sweep
        return False

    async def _owner_exists(self, ref: OwnerReference, dependent: Resource) -> bool:
        """Whether the object ``ref`` names exists with that uid. An owner of a kind this
        collector does not know cannot be checked, so it counts as existing (kept, as
        Kubernetes keeps dependents of owners it cannot resolve)."""
        cls = BY_KIND.get(ref.kind)
        if cls is None:
            return True
        if cls.NAMESPACED:
            namespace = dependent.metadata.namespace
            if namespace is None:  # a cluster-scoped object cannot have a namespaced owner
                return False
        else:
            namespace = None
        try:
            owner = await self.store.get(cls, ref.name, namespace)
        except (NotFound, Invalid):  # Invalid: a name no object can have
            return False
        return owner.metadata.uid == ref.uid
