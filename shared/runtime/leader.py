"""Leader election with a lease in JetStream KV, so two replicas never reconcile at once.

The lease is a key in a bucket whose TTL is the lease duration: the holder renews it with
compare-and-set well inside the TTL; when the holder dies the key expires and another
replica's ``create`` succeeds. A holder that fails to renew steps down at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError

from shared import metrics
from shared.natsutil import open_bucket
from shared.tasks import raise_if_cancelling

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 15.0


def default_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class LeaderElector:
    def __init__(
        self,
        nc: NATS,
        *,
        lease: str,
        bucket: str = "ccloud-leases",
        identity: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.nc = nc
        self.lease = lease
        self.bucket = bucket
        self.identity = identity or default_identity()
        self.lease_seconds = lease_seconds
        self._rev = 0
        self._kv = None
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()

    async def _bucket(self):
        if self._kv is None:
            self._kv = await open_bucket(
                self.nc.jetstream(),
                api.KeyValueConfig(bucket=self.bucket, history=1, ttl=self.lease_seconds),
            )
        return self._kv

    async def try_acquire(self) -> bool:
        kv = await self._bucket()
        try:
            self._rev = await kv.create(self.lease, self.identity.encode())
        except KeyWrongLastSequenceError:
            return False
        self.lost.clear()
        self.leading.set()
        metrics.LEADER.labels(self.lease).set(1)
        log.info("lease %s acquired by %s", self.lease, self.identity)
        return True

    async def holder(self) -> str | None:
        kv = await self._bucket()
        try:
            entry = await kv.get(self.lease)
        except Exception:
            return None
        return entry.value.decode() if entry.value else None

    async def acquire(self) -> None:
        """Wait until this replica holds the lease."""
        while not await self.try_acquire():  # noqa: ASYNC110 - polling a remote lease
            raise_if_cancelling()
            await asyncio.sleep(self.lease_seconds / 5)

    async def renew_forever(self) -> None:
        """Renew until renewal fails; then mark the lease lost and return."""
        kv = await self._bucket()
        try:
            while True:
                await asyncio.sleep(self.lease_seconds / 3)
                self._rev = await asyncio.wait_for(
                    kv.update(self.lease, self.identity.encode(), last=self._rev),
                    self.lease_seconds / 3,
                )
                raise_if_cancelling()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("lease %s lost by %s: %s", self.lease, self.identity, e)
            self._step_down()

    def _step_down(self) -> None:
        self.leading.clear()
        self.lost.set()
        metrics.LEADER.labels(self.lease).set(0)

    async def release(self) -> None:
        if not self.leading.is_set():
            return
        kv = await self._bucket()
        with contextlib.suppress(Exception):
            await kv.delete(self.lease, last=self._rev)
        self._step_down()


async def lease_holders(nc: NATS, bucket: str, leases: list[str]) -> dict[str, str | None]:
    """Who holds each lease (None: nobody, the service has no live leader)."""
    try:
        kv = await nc.jetstream().key_value(bucket)
    except BucketNotFoundError:
        return dict.fromkeys(leases)
    out: dict[str, str | None] = {}
    for lease in leases:
        try:
            entry = await kv.get(lease)
        except Exception:
            out[lease] = None
            continue
        out[lease] = entry.value.decode() if entry.value else None
    return out
