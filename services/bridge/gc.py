"""Cascade delete: when an owner is gone, delete the objects that name it as owner.

Background deletion as Kubernetes does it: dependents are deleted after the owner has
been removed; each dependent's own finalizers still run. Idempotent on redelivery.
"""

from __future__ import annotations

import logging

from shared.bus import Bus, ChangeEvent, Consumer
from shared.models import BY_KIND, Resource
from shared.store import NotFound, Store

log = logging.getLogger(__name__)


class GarbageCollector:
    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.bus = bus
        self.owner_kinds = {k: cls for k, cls in BY_KIND.items() if cls.OWNS}
        self._consumer: Consumer | None = None
        self.collected = 0

    async def start(self) -> None:
        subjects = [self.bus.subject("*", k, "deleted") for k in self.owner_kinds]
        self._consumer = await self.bus.consume("bridge-gc", subjects, self.handle)

    async def stop(self) -> None:
        if self._consumer:
            await self._consumer.stop()

    async def handle(self, ev: ChangeEvent) -> None:
        owner = self.owner_kinds.get(ev.kind)
        if owner is None:
            return
        for dep_kind in owner.OWNS:
            cls: type[Resource] = BY_KIND[dep_kind]
            ns = ev.namespace if cls.NAMESPACED else None
            for obj in await self.store.list_all(cls, ns):
                if obj.deleting:
                    continue
                if any(o.uid == ev.uid for o in obj.metadata.owner_references):
                    try:
                        await self.store.delete(cls, obj.metadata.name, obj.metadata.namespace)
                        self.collected += 1
                        log.info("gc: deleting %s %s (owner %s %s gone)", dep_kind,
                                 obj.metadata.name, ev.kind, ev.name)
                    except NotFound:
                        pass
