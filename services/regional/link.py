"""The region link: keeps one region's store and management's store in step.

The regional service set (LCM, providers, mirror, and this link) runs against the regional
nats-server: its own store (KV bucket) and bus, in the region's JetStream domain. They keep
working while management is unreachable. This link moves changes across, in both
directions, once it can:

- **down**: a stream in the regional domain *sources* management's event stream through
  the leafnode (``$JS.<management domain>.API``), filtered to ``<prefix>.<region>.>`` (and
  ``<prefix>.global.>``): only this region's events ever reach the regional server, and
  JetStream sourcing resumes where it stopped after an outage. For each event the link
  reads the object from management and applies it to the regional store.
- **up**: a durable consumer of the regional bus (``<prefix>.<region>.>``) reads each
  changed regional object and applies it to management's store. While management is
  unreachable the event stays unacknowledged and is retried: nothing is lost.

What each direction copies is decided by :mod:`services.regional.merge` (field ownership),
and writes use ``KVStore.restore`` so uids, owner references and status survive. A write
that would change nothing is skipped, which is what stops changes echoing back and forth.
"""

from __future__ import annotations

import logging

import msgspec
from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import NotFoundError as StreamNotFound

from services.regional import merge
from services.regional.topology import MANAGEMENT_DOMAIN
from shared.bus import Bus, ChangeEvent, stream_name
from shared.models import ALL_KINDS, GLOBAL_REGION, Resource
from shared.store import NotFound
from shared.store.kv import KVStore

log = logging.getLogger(__name__)

KINDS: dict[str, type[Resource]] = {k.KIND: k for k in ALL_KINDS}


class LinkDown(Exception):
    """Management is unreachable; the event is retried once the link is back."""


def downlink_stream(prefix: str) -> str:
    return f"{stream_name(prefix)}_FROM_MANAGEMENT"


class RegionLink:
    """One region's link to management; ``start``/``stop`` like every component."""

    def __init__(
        self,
        *,
        region: str,
        prefix: str,
        local_nc: NATS,
        local_store: KVStore,
        mgmt_nc: NATS,
        mgmt_store: KVStore,
        mgmt_domain: str = MANAGEMENT_DOMAIN,
        include_global: bool = True,
        region_homed: frozenset[str] = merge.REGION_HOMED_KINDS,
    ) -> None:
        if region == GLOBAL_REGION:
            raise ValueError(f"{GLOBAL_REGION!r} is not a region a link can serve")
        self.region = region
        self.prefix = prefix
        self.local_nc = local_nc
        self.local = local_store
        self.mgmt_nc = mgmt_nc
        self.mgmt = mgmt_store
        self.mgmt_domain = mgmt_domain
        self.include_global = include_global
        self.region_homed = region_homed
        self.applied_down = 0
        self.applied_up = 0
        self._down_bus = Bus(local_nc, prefix=prefix, service=f"region-link-{region}")
        self._down_bus.stream = downlink_stream(prefix)
        self._up_bus = Bus(local_nc, prefix=prefix, service=f"region-link-{region}")

    @property
    def down_subjects(self) -> list[str]:
        subjects = [f"{self.prefix}.{self.region}.>"]
        if self.include_global:
            subjects.append(f"{self.prefix}.{GLOBAL_REGION}.>")
        return subjects

    async def ensure_downlink_stream(self) -> None:
        """The regional stream that sources this region's management events."""
        external = api.ExternalStream(api=f"$JS.{self.mgmt_domain}.API")
        sources = [
            api.StreamSource(name=stream_name(self.prefix), filter_subject=s, external=external)
            for s in self.down_subjects
        ]
        js = self.local_nc.jetstream()
        name = downlink_stream(self.prefix)
        config = api.StreamConfig(
            name=name, sources=sources, storage=api.StorageType.FILE, max_age=24 * 3600.0
        )
        try:
            await js.stream_info(name)
        except StreamNotFound:
            await js.add_stream(config)

    async def start(self) -> None:
        await self._up_bus.start()
        await self.ensure_downlink_stream()
        durable = f"region-link-{self.region}"
        await self._down_bus.consume(
            f"{durable}-down", self.down_subjects, self._on_down, deliver_new=False
        )
        await self._up_bus.consume(
            f"{durable}-up", [f"{self.prefix}.{self.region}.>"], self._on_up, deliver_new=False
        )

    async def stop(self) -> None:
        await self._down_bus.stop()
        await self._up_bus.stop()

    # --- handlers -----------------------------------------------------------------------

    def _check_link(self) -> None:
        if not self.mgmt_nc.is_connected:
            raise LinkDown(f"region {self.region}: management is unreachable")

    async def _read(self, store: KVStore, ev: ChangeEvent) -> Resource | None:
        cls = KINDS.get(ev.kind)
        if cls is None:
            return None
        try:
            return await store.get(cls, ev.name, ev.namespace)
        except NotFound:
            return None

    async def _on_down(self, ev: ChangeEvent) -> None:
        self._check_link()
        if ev.kind not in KINDS:
            return
        mgmt = await self._read(self.mgmt, ev)
        local = await self._read(self.local, ev)
        action = merge.down(mgmt, local, uid=ev.uid, region_homed=self.region_homed)
        if await apply(self.local, action):
            self.applied_down += 1

    async def _on_up(self, ev: ChangeEvent) -> None:
        if ev.kind not in KINDS or ev.region != self.region:
            return
        self._check_link()
        local = await self._read(self.local, ev)
        mgmt = await self._read(self.mgmt, ev)
        action = merge.up(local, mgmt, uid=ev.uid, region_homed=self.region_homed)
        if await apply(self.mgmt, action):
            self.applied_up += 1


async def apply(store: KVStore, action: merge.Action) -> bool:
    """Carry out one merge decision on ``store``; True when something was written."""
    match action:
        case None:
            return False
        case merge.Restore(obj=obj, rv=rv):
            await store.restore(obj, resource_version=rv)
        case merge.RequestDelete(obj=obj):
            try:
                await store.delete(type(obj), obj.metadata.name, obj.metadata.namespace)
            except NotFound:
                return False
        case merge.Remove(obj=obj):
            await remove(store, obj)
        case merge.Replace(old=old, obj=obj):
            await remove(store, old)
            await store.restore(obj)
    log.debug("region link applied %s", type(action).__name__)
    return True


async def remove(store: KVStore, obj: Resource) -> None:
    """Remove ``obj`` (matched by uid) now, finalizers or not."""
    cls = type(obj)
    try:
        current = await store.get(cls, obj.metadata.name, obj.metadata.namespace)
    except NotFound:
        return
    if current.metadata.uid != obj.metadata.uid:
        return
    if current.metadata.finalizers:
        md = msgspec.structs.replace(current.metadata, finalizers=[])
        current = await store.update(msgspec.structs.replace(current, metadata=md))
        if not current.deleting:
            await store.delete(cls, obj.metadata.name, obj.metadata.namespace)
        return
    await store.delete(cls, obj.metadata.name, obj.metadata.namespace)
