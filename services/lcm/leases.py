"""Node leases: each agent's latest sign of life, kept out of the system of record.

An LCMMachine write wakes the LCM controllers, the endpoint's change hub and every
watcher of the event stream; with heartbeats in ``status.heartbeat`` a 10k-node region
spent most of a core on liveness alone. As Kubernetes moved node heartbeats from Node
status into Lease objects (kube-node-lease), a renewal here is one put to a NATS KV
bucket that nothing but the liveness check reads. ``status.heartbeat`` still moves: on
every agent report, every ``heartbeat_status_interval``, and at once when the node was
marked missing, so the object says when it was last heard from and a returning node wakes
its controller.

Keys are ``<region>.<namespace>.<name>``, so one region's liveness check reads only its
own leases. A value is ``<stamp> <LCMMachine uid>``: a machine deleted and made again
under the same name is not taken for alive on the lease of the one before (a lease the
endpoint could not drop - it restarted in between - lives until the TTL). The bucket's TTL
drops the lease of a machine nobody renews any more.
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from services.lcm.clock import stamp
from services.lcm.config import LCMSettings
from shared.bus import Bus
from shared.models import LCMMachine
from shared.natsutil import close_subscription, open_bucket
from shared.tasks import cancel_all

LOAD_TIMEOUT = 30.0
NO_REGION = "_"  # key segment of an LCMMachine without spec.region


def node_leases(bus: Bus, settings: LCMSettings) -> NodeLeases:
    """The lease bucket of the bus's prefix (every region's leases, keyed by region)."""
    return NodeLeases(bus.nc, f"{bus.prefix}-node-leases", ttl=settings.lease_ttl)


def lease_key(region: str, namespace: str, name: str) -> str:
    return f"{region or NO_REGION}.{namespace or NO_REGION}.{name}"


def key_of(lm: LCMMachine) -> str:
    return lease_key(lm.spec.region, lm.metadata.namespace or "", lm.metadata.name)


def stamp_of(value: str, lm: LCMMachine) -> str:
    """The stamp in a lease ``value`` if the lease is ``lm``'s own (same uid), else ""."""
    when, _, uid = value.partition(" ")
    return when if not uid or not lm.metadata.uid or uid == lm.metadata.uid else ""


class NodeLeases:
    """The lease bucket; the endpoint renews, ``LeaseView`` reads."""

    def __init__(self, nc: NATS, bucket: str, *, ttl: float) -> None:
        self._js = nc.jetstream()
        self.bucket = bucket
        self.ttl = ttl
        self._kv: KeyValue | None = None
        self._opening = asyncio.Lock()

    async def kv(self) -> KeyValue:
        async with self._opening:
            if self._kv is None:
                self._kv = await open_bucket(
                    self._js, api.KeyValueConfig(bucket=self.bucket, history=1, ttl=self.ttl)
                )
            return self._kv

    async def renew(self, lm: LCMMachine) -> None:
        value = f"{stamp()} {lm.metadata.uid}" if lm.metadata.uid else stamp()
        await (await self.kv()).put(key_of(lm), value.encode())

    async def drop(self, key: str) -> None:
        """Forget the lease of a machine that is gone (the TTL would, later)."""
        await (await self.kv()).delete(key)


class LeaseView:
    """The leases of one region (all with ``region=None``), kept current by a KV watch.

    ``start()`` returns once every lease stored before it is loaded: a liveness check that
    ran on a half-loaded view would call live nodes missing."""

    def __init__(self, leases: NodeLeases, region: str | None) -> None:
        self.leases = leases
        self.region = region
        self._renewed: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    def renewed(self, lm: LCMMachine) -> str:
        """The stamp of ``lm``'s latest lease renewal the watch has brought, "" if none."""
        return stamp_of(self._renewed.get(key_of(lm), ""), lm)

    async def latest(self, lm: LCMMachine) -> str:
        """The stamp of ``lm``'s lease read from the bucket itself, "" if it has none.

        For the rare, consequential answer: the watch can lag (its ordered consumer takes
        up to two idle heartbeats, ~10-20 s, to notice a restarted nats-server), and no
        node may be called missing for that."""
        key = key_of(lm)
        try:
            entry = await (await self.leases.kv()).get(key)
        except (KeyNotFoundError, KeyDeletedError):
            self._renewed.pop(key, None)
            return ""
        value = entry.value.decode() if entry.value else ""
        if value:
            self._renewed[key] = value
        return stamp_of(value, lm)

    def __len__(self) -> int:
        return len(self._renewed)

    async def start(self) -> None:
        kv = await self.leases.kv()
        watcher = await kv.watch(f"{self.region}.>" if self.region else ">")
        loaded = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._follow(watcher, loaded), name="lcm:leases")
        await asyncio.wait({loaded, self._task}, timeout=LOAD_TIMEOUT,
                           return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            self._task.result()  # the watch failed before the initial load: say why
        if not loaded.done():
            await self.stop()
            raise TimeoutError(f"the node leases of {self.region or 'all regions'} in "
                               f"{self.leases.bucket} did not load within {LOAD_TIMEOUT:.0f}s")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_all([self._task])
            self._task = None
        self._renewed.clear()

    async def _follow(self, watcher: KeyValue.KeyWatcher, loaded: asyncio.Future[None]) -> None:
        try:
            async for entry in watcher:
                if entry is None:  # the initial values are all in
                    if not loaded.done():
                        loaded.set_result(None)
                    continue
                if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                    self._renewed.pop(entry.key, None)
                else:
                    self._renewed[entry.key] = entry.value.decode()
        finally:
            await close_subscription(watcher._sub)  # stop() alone can wait on its queue
