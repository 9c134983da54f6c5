"""Per-kind informer over the KV bucket: every live object of one kind, kept in memory.

A list used to read every retained revision of the kind from a fresh consumer and decode
all of them, so a controller listing one cluster's machines paid for every machine of the
region, and a region's total cost grew as N^2. The informer follows the kind's subjects
with one ordered consumer for the life of the process and answers lists from memory.

It is never stale: before answering, ``fresh()`` proves that everything committed before
the call has been applied (the stream's last sequence is already applied, or the stream
holds no message of this kind between what was applied and that sequence), so a list is a
consistent cut that includes every write that finished before it started — exactly what
the snapshot read gave, at two small server calls instead of a full read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from shared.models import Resource, ValidationError, decode
from shared.natsutil import close_subscription, read_stream
from shared.store.errors import Unavailable

R = TypeVar("R", bound=Resource)
log = logging.getLogger(__name__)

FRESH_TIMEOUT = 10.0
READ_CHUNK = 10_000  # messages an informer that does not follow reads at a time


class Informer(Generic[R]):
    """Objects of ``cls`` by namespace and name; ``fresh()`` before every read.

    ``follow`` False: no consumer follows the kind; ``fresh()`` reads what was written
    since the last read (batched direct gets) instead. For a process that reads a kind
    seldom (the bridge's garbage collector sweeps every few minutes or after a delete):
    a followed kind costs it a delivery, a wake-up and a decode for every write, read
    or not."""

    def __init__(
        self, js: JetStreamContext, bucket: str, cls: type[R], last_seq: Callable[[], Any],
        *, follow: bool = True, nc: NATS | None = None,
    ) -> None:
        if not follow and nc is None:
            raise ValueError("an informer that does not follow reads through nc")
        self._js = js
        self._nc = nc
        self._follow = follow
        self._cls = cls
        self._stream = f"KV_{bucket}"
        self._subject = f"$KV.{bucket}.{cls.KIND}.>"
        self._prefix = len(f"$KV.{bucket}.{cls.KIND}.")
        self._last_seq = last_seq
        self._objects: dict[str, dict[str, R]] = {}  # namespace ("_" if none) -> name -> obj
        # Stored objects that no longer decode: a list over them fails as the snapshot did.
        self._broken: dict[tuple[str, str], ValidationError] = {}
        self._applied = 0  # stream sequence of the last message applied
        self._proven = 0  # stream sequence fresh() proved everything up to is applied
        self._synced = False  # a fresh() has finished
        self._advanced = asyncio.Event()
        self._sub: Any = None
        self._starting: asyncio.Lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._starting:
            if self._sub is None and self._follow:
                self._sub = await self._js.subscribe(
                    self._subject,
                    ordered_consumer=True,
                    deliver_policy=api.DeliverPolicy.ALL,
                    cb=self._on_msg,
                )

    async def stop(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await close_subscription(sub)

    async def _on_msg(self, msg: Msg) -> None:
        self._apply(msg.subject, msg.metadata.sequence.stream, msg.headers, msg.data)

    def _apply(self, subject: str, seq: int, headers: dict[str, str] | None, data: bytes,
               ) -> None:
        if seq <= self._applied:
            return  # redelivered after the ordered consumer reset itself, or read twice
        ns, _, name = subject[self._prefix:].partition(".")
        op = (headers or {}).get("KV-Operation", "PUT")
        bucket = self._objects.setdefault(ns, {})
        self._broken.pop((ns, name), None)
        if op in ("DEL", "PURGE") or not data:
            bucket.pop(name, None)
        else:
            try:
                obj = decode(self._cls, data)
            except ValidationError as e:
                bucket.pop(name, None)
                self._broken[(ns, name)] = e
            else:
                obj.metadata.resource_version = str(seq)
                bucket[name] = obj
        self._applied = seq
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def fresh(self) -> None:
        """Return once every write committed before this call has been applied."""
        await self.start()
        target = await self._last_seq()
        if not self._follow:
            while True:  # in chunks: a first read may be the kind's whole history
                assert self._nc is not None
                msgs = await read_stream(self._nc, self._js, self._stream, self._applied,
                                         subject=self._subject, limit=READ_CHUNK)
                for msg in msgs:
                    headers = msg.headers or {}
                    self._apply(headers["Nats-Subject"], int(headers["Nats-Sequence"]),
                                headers, msg.data)
                if len(msgs) < READ_CHUNK:
                    break
            self._proven = max(self._proven, target)  # read through the end after ``target``
            self._synced = True
            return
        deadline = asyncio.get_running_loop().time() + FRESH_TIMEOUT
        while self._applied < target:
            # Later messages may all be of other kinds: ask the stream for the first message
            # of ours after what was applied. The consumer's own pending count would be
            # cheaper but lags a write the server has already acknowledged.
            try:
                following = await self._js.get_msg(
                    self._stream, seq=self._applied + 1, subject=self._subject, next=True,
                    direct=True,
                )
            except NotFoundError:
                break
            if following.seq is None or following.seq > target:
                break
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise Unavailable(f"the {self._cls.KIND} cache is not catching up")
            try:
                await asyncio.wait_for(self._advanced.wait(), min(remaining, 0.5))
            except TimeoutError:
                pass
        self._proven = max(self._proven, target)
        self._synced = True

    def objects(self, namespace: str | None) -> Iterator[R]:
        """Live objects (shared, not copies: callers must copy what they hand out)."""
        for (ns, _), error in self._broken.items():
            if not namespace or ns == namespace:
                raise error
        if namespace:
            yield from self._objects.get(namespace, {}).values()
            return
        for bucket in self._objects.values():
            yield from bucket.values()

    def live(self) -> list[R]:
        """Every object of the kind that decodes (shared); unlike ``objects``, one that no
        longer decodes is left out rather than failing the read."""
        return [o for bucket in self._objects.values() for o in bucket.values()]

    def find(self, namespace: str | None, name: str) -> R | None:
        """The object as last applied (shared, may be behind the store)."""
        return self._objects.get(namespace or "_", {}).get(name)

    @property
    def synced(self) -> bool:
        """Whether a ``fresh()`` has finished: the cache held every object of the kind at
        least once (before that it is still reading the kind's history)."""
        return self._synced

    @property
    def applied(self) -> int:
        """The stream sequence of the last write of this kind applied."""
        return self._applied

    @property
    def cut(self) -> int:
        """The stream sequence the last ``fresh()`` proved this cache complete up to: a
        list's resourceVersion, exact to resume a watch from (not merely the last write of
        this kind, which is 0 for a kind with no objects: "any version" to the API)."""
        return max(self._applied, self._proven)
