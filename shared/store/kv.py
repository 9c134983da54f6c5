"""Embedded store backend on NATS JetStream KV: the product runs without Kubernetes.

One bucket holds every object under ``<Kind>.<namespace or _>.<name>``. The KV revision
(the stream sequence) is the resourceVersion, writes are compare-and-set on the last
subject sequence, and a watch is an ordered consumer starting after the given revision.
Each write carries a ``Ccloud-Op`` header so watchers can tell ADDED from MODIFIED, and a
delete writes a KV tombstone whose payload is the final object, so DELETED events carry it.

The bucket keeps the last few revisions per key (``HISTORY``), so a key rewritten while a
list or watch reads it is not skipped. A watch resumes only from a revision whose history
it can prove complete, else it raises ``Gone`` (HTTP 410: the client relists), as the
Kubernetes API does for a compacted version. Every write names the key's previous revision
(``Ccloud-Prev``), so the first change of a key after the resume point that names a
revision beyond that point, which is no longer delivered, proves a change was trimmed; so
does a stream whose first kept sequence is past the point, a purge marker (it removed what
came before it), or a revision beyond the stream's end (a reset store). The same check runs
on the live part of the stream, so a watcher that fell behind a trim ends with ``Gone``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import api
from nats.js.errors import APIError, BucketNotFoundError, KeyDeletedError, KeyNotFoundError

from shared.models import Resource, copy, decode, encode
from shared.models.registry import BY_KIND
from shared.natsutil import api_prefix, close_subscription
from shared.store import prefetch, selectors, semantics
from shared.store.base import (
    EventType,
    ListResult,
    Store,
    WatchEvent,
    decode_continue,
    encode_continue,
)
from shared.store.errors import (
    AlreadyExists,
    Conflict,
    Gone,
    Invalid,
    NotFound,
    Unavailable,
)
from shared.store.informer import Informer
from shared.store.lastseq import LastSeq
from shared.tasks import raise_if_cancelling

R = TypeVar("R", bound=Resource)
OnCommit = Callable[[EventType, Resource], Awaitable[object]]
log = logging.getLogger(__name__)

OP_HEADER = "Ccloud-Op"
ORIGIN_KEY = "_origin"  # see KVStore._mark_origin; no kind's keys start with "_"
PREV_HEADER = "Ccloud-Prev"  # the key's revision this write replaced (0: none)
_WRONG_LAST_SEQUENCE = 10071
_UNCONDITIONAL_RETRIES = 8
SNAPSHOT_CONSUMER_TTL = 2.0
# Revisions kept per key. Not for reading old versions: a few superseded revisions kept
# around mean a list or a watch never misses a key that is being rewritten while it reads.
HISTORY = 4
SNAPSHOT_TIMEOUT = 5.0
_CLEANUPS: set[asyncio.Task[None]] = set()


def _key(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind}.{namespace or '_'}.{name}"


def _with_rv(obj: R, rev: int) -> R:
    md = msgspec.structs.replace(obj.metadata, resource_version=str(rev))
    return msgspec.structs.replace(obj, metadata=md)


def _without_rv(obj: Resource) -> bytes:
    md = msgspec.structs.replace(obj.metadata, resource_version=None)
    return encode(msgspec.structs.replace(obj, metadata=md))


class KVStore(Store):
    """Store on a JetStream KV bucket; the caller owns the NATS connection."""

    def __init__(
        self,
        nc: NATS,
        *,
        bucket: str = "ccloud-objects",
        on_commit: OnCommit | None = None,
        informers: bool = True,
        follow: bool = True,
    ) -> None:
        """``follow`` False: the informers catch up when read instead of following each
        write as it is made (``Informer``), for a process that reads seldom."""
        self._nc = nc
        self.on_commit = on_commit
        self.use_informers = informers
        self.follow = follow
        self._informers: dict[str, Informer[Any]] = {}
        self._js = nc.jetstream()
        self.bucket = bucket
        self._stream = f"KV_{bucket}"
        self._last_seq = LastSeq(
            nc, self._stream, api_prefix=api_prefix(self._js))
        self._kv = None

    def reading_on_demand(self) -> KVStore:
        """The same bucket and commit hook, with caches that catch up when read (start it)."""
        return KVStore(self._nc, bucket=self.bucket, on_commit=self.on_commit,
                       informers=self.use_informers, follow=False)

    @property
    def stream(self) -> str:
        """The JetStream stream behind the bucket."""
        return self._stream

    async def start(self) -> None:
        try:
            await self._js.key_value(self.bucket)
        except BucketNotFoundError:
            self._kv = await self._js.create_key_value(
                api.KeyValueConfig(
                    bucket=self.bucket, history=HISTORY, storage=api.StorageType.FILE,
                    direct=True,
                )
            )
            await self._mark_origin()
            return
        info = await self._js.stream_info(self._stream)
        # A bucket from an older version: keep enough history, and answer gets directly
        # (raw message, no JSON + base64 + header parsing on every read).
        if info.config.max_msgs_per_subject != HISTORY or not info.config.allow_direct:
            info.config.max_msgs_per_subject = HISTORY
            info.config.allow_direct = True
            await self._js.update_stream(info.config)
        self._kv = await self._js.key_value(self.bucket)
        if info.state.last_seq == 0:
            await self._mark_origin()

    async def _mark_origin(self) -> None:
        """Write one entry no kind reads, so no list ever answers resourceVersion "0".

        To the Kubernetes API "0" means "any version": a watch from it starts with a fresh
        snapshot, not exactly there. An empty bucket's list would say "0", and a watcher
        resuming from that (the bridge) would fold writes made meanwhile into the snapshot.
        """
        await self.kv.put(ORIGIN_KEY, b"")

    async def close(self) -> None:
        informers, self._informers = list(self._informers.values()), {}
        for informer in informers:
            await informer.stop()

    @property
    def kv(self):
        if self._kv is None:
            raise Unavailable("store not started")
        return self._kv

    # --- reads --------------------------------------------------------------------------

    async def _get_entry(self, cls: type[R], name: str, namespace: str | None) -> R:
        try:
            # Names were checked against the Kubernetes name rules (a subset of valid keys):
            # nats-py's own per-call regex check of the key is skipped.
            entry = await self.kv.get(_key(cls.KIND, namespace, name), validate_keys=False)
        except (KeyNotFoundError, KeyDeletedError):
            raise NotFound(f"{cls.KIND} {_ref(namespace, name)} not found") from None
        return _with_rv(decode(cls, entry.value), entry.revision)

    async def get(self, cls: type[R], name: str, namespace: str | None = None) -> R:
        semantics.check_namespace(cls, namespace)
        semantics.check_name(cls, name)
        if (offered := prefetch.take(cls, name, namespace)) is not None:
            return offered
        return await self._get_entry(cls, name, namespace)

    async def _snapshot(self, cls: type[R], namespace: str | None) -> tuple[list[R], int]:
        """Every live object of ``cls`` (in ``namespace``) and the revision of the cut.

        Reads the bucket's retained revisions in stream order and keeps the last per key,
        until the server has nothing pending. Last-per-subject delivery would be cheaper
        but is no consistent cut: a key rewritten while the consumer starts can arrive
        after its end marker, or not at all.
        """
        if namespace:
            semantics.check_namespace(cls, namespace)
        rv = await self._last_seq()
        subject = f"{cls.KIND}.{namespace}.>" if namespace else f"{cls.KIND}.>"
        latest: dict[str, _Entry] = {}
        for entry in await self._read(subject):
            if entry.operation in ("DEL", "PURGE"):
                latest.pop(entry.key, None)
            else:
                latest[entry.key] = entry
            rv = max(rv, entry.revision)
        items = [_with_rv(decode(cls, e.value), e.revision) for e in latest.values()]
        return items, rv

    async def dump(self) -> tuple[list[Resource], int]:
        """Every live object of every kind as of one revision, and that revision: one read
        of the whole bucket in stream order, so the cut is consistent across kinds (an
        owner is there whenever the objects it owns are). For backups."""
        rv = await self._last_seq()
        latest: dict[str, _Entry] = {}
        for entry in await self._read(">"):
            rv = max(rv, entry.revision)
            if entry.key.startswith("_"):
                continue  # the store's own bookkeeping (ORIGIN_KEY), not an object
            if entry.operation in ("DEL", "PURGE"):
                latest.pop(entry.key, None)
            else:
                latest[entry.key] = entry
        out: list[Resource] = []
        for entry in latest.values():
            cls = BY_KIND.get(entry.key.split(".", 1)[0])
            if cls is None:
                raise Invalid(f"{entry.key}: a kind this version does not know")
            out.append(_with_rv(decode(cls, entry.value), entry.revision))
        return out, rv

    async def _read(self, subject: str) -> list[_Entry]:
        """Retained KV entries under ``subject`` in stream order, up to the end of the
        stream as it is when the last pending one is delivered."""
        sub = await self._js.subscribe(
            f"$KV.{self.bucket}.{subject}",
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.ALL,
            inactive_threshold=SNAPSHOT_CONSUMER_TTL,
        )
        prefix = len(f"$KV.{self.bucket}.")
        out: list[_Entry] = []
        try:
            if (await sub.consumer_info()).num_pending == 0 and not sub.delivered:
                # A fresh consumer may not have counted its backlog yet: ask the stream.
                info = await self._js.stream_info(
                    self._stream, subjects_filter=f"$KV.{self.bucket}.{subject}"
                )
                if not info.state.subjects:
                    return out
            while True:
                try:
                    msg = await sub.next_msg(timeout=SNAPSHOT_TIMEOUT)
                except NatsTimeoutError:
                    raise Unavailable("the store stopped answering a list") from None
                meta = msg.metadata
                out.append(_Entry(
                    key=msg.subject[prefix:],
                    value=msg.data,
                    revision=meta.sequence.stream,
                    operation=(msg.headers or {}).get("KV-Operation", "PUT"),
                ))
                if meta.num_pending == 0:
                    return out
        finally:
            await close_subscription(sub)
            await self._delete_consumer(sub)

    async def _delete_consumer(self, sub: Any) -> None:
        """Ephemeral consumers of lists would otherwise linger on the server."""
        consumer = getattr(sub, "_consumer", None)
        if consumer:
            with contextlib.suppress(Exception):
                await self._js.delete_consumer(self._stream, consumer)

    async def list(
        self,
        cls: type[R],
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListResult[R]:
        match = selectors.parse(label_selector)
        if self.use_informers:
            informer = await self._informer(cls, namespace)
            items = [o for o in informer.objects(namespace) if match(o.metadata.labels)]
            rv = informer.cut
        else:
            items, rv = await self._snapshot(cls, namespace)
            items = [o for o in items if match(o.metadata.labels)]
        items.sort(key=_sort_key)
        if continue_token:
            after = decode_continue(continue_token).after
            items = [o for o in items if _sort_key(o) > after]
        token = None
        if limit and len(items) > limit:
            items = items[:limit]
            token = encode_continue(_sort_key(items[-1]), str(rv))
        if self.use_informers:  # hand out copies: the informer's objects are shared
            items = [copy(o) for o in items]
        return ListResult(items=items, resource_version=str(rv), continue_token=token)

    async def list_all(
        self,
        cls: type[R],
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        where: Callable[[R], bool] | None = None,
        shared: bool = False,
    ) -> list[R]:
        if not self.use_informers:
            return await super().list_all(cls, namespace, label_selector=label_selector,
                                          where=where)
        match = selectors.parse(label_selector)
        informer = await self._informer(cls, namespace)
        items = [o for o in informer.objects(namespace)
                 if match(o.metadata.labels) and (where is None or where(o))]
        if not shared:
            items = [copy(o) for o in items]
        items.sort(key=_sort_key)
        return items

    async def _informer(self, cls: type[R], namespace: str | None) -> Informer[R]:
        if namespace:
            semantics.check_namespace(cls, namespace)
        informer = self._informers.get(cls.KIND)
        if informer is None:
            informer = self._informers[cls.KIND] = Informer(
                self._js, self.bucket, cls, self._last_seq, follow=self.follow, nc=self._nc
            )
        await informer.fresh()
        return informer

    # --- writes -------------------------------------------------------------------------

    async def _put(self, key: str, payload: bytes, *, last: int, op: EventType) -> int:
        prefetch.writing()
        headers = {
            "Nats-Expected-Last-Subject-Sequence": str(last), OP_HEADER: op, PREV_HEADER: str(last),
        }
        if op == "DELETED":
            headers["KV-Operation"] = "DEL"
        try:
            ack = await self._js.publish(f"$KV.{self.bucket}.{key}", payload, headers=headers)
        except APIError as e:
            if e.err_code == _WRONG_LAST_SEQUENCE:
                raise Conflict(f"{key}: concurrent write (expected revision {last})") from None
            raise
        return ack.seq

    async def _committed(self, op: EventType, obj: R) -> R:
        """Announce a committed write. A failure here loses nothing: the bridge tailing the
        bucket publishes the same event id later and the bus drops the duplicate."""
        if self.on_commit is not None:
            try:
                await self.on_commit(op, obj)
            except Exception as e:
                log.warning("commit hook failed for %s %s: %s", obj.kind, obj.metadata.name, e)
        return obj

    async def _tombstone_rev(self, key: str) -> int:
        """Revision of a delete marker left at ``key`` (0 if the key never existed)."""
        try:
            await self.kv.get(key, validate_keys=False)
        except KeyDeletedError as e:
            return e.entry.revision
        except KeyNotFoundError as e:
            entry = getattr(e, "entry", None)
            return entry.revision if entry is not None else 0
        return -1

    async def create(self, obj: R) -> R:
        prepared = semantics.prepare_create(obj)
        key = _key(obj.kind, obj.metadata.namespace, obj.metadata.name)
        payload = _without_rv(prepared)
        try:
            rev = await self._put(key, payload, last=0, op="ADDED")
        except Conflict:
            last = await self._tombstone_rev(key)
            if last < 0:
                raise AlreadyExists(
                    f"{obj.kind} {_ref(obj.metadata.namespace, obj.metadata.name)} already exists"
                ) from None
            try:
                rev = await self._put(key, payload, last=last, op="ADDED")
            except Conflict:
                raise AlreadyExists(f"{obj.kind} {obj.metadata.name!r} already exists") from None
        return await self._committed("ADDED", _with_rv(prepared, rev))

    async def _write(self, obj: R, prepare) -> R:
        semantics.check_namespace(type(obj), obj.metadata.namespace)
        semantics.check_name(type(obj), obj.metadata.name)
        key = _key(obj.kind, obj.metadata.namespace, obj.metadata.name)
        attempts = 1 if obj.metadata.resource_version else _UNCONDITIONAL_RETRIES
        for attempt in range(attempts):
            cached = self._stored(obj) if attempt == 0 else None
            stored = cached or await self._get_entry(
                type(obj), obj.metadata.name, obj.metadata.namespace
            )
            out, remove = prepare(obj, stored)
            last = int(stored.metadata.resource_version or 0)
            try:
                op: EventType = "DELETED" if remove else "MODIFIED"
                rev = await self._put(key, _without_rv(out), last=last, op=op)
                return await self._committed(op, _with_rv(out, rev))
            except Conflict:
                if cached is not None:  # the cache may not know yet: a gone object is NotFound
                    await self._get_entry(type(obj), obj.metadata.name, obj.metadata.namespace)
                if attempt + 1 >= attempts:
                    raise
        raise AssertionError("unreachable")

    def _stored(self, obj: R) -> R | None:
        """The stored version the caller read, from the informer when it holds exactly
        that revision: saves a read per write. The put is compare-and-set on that
        revision, so a newer write in between still fails as a conflict."""
        informer = self._informers.get(obj.kind)
        rv = obj.metadata.resource_version
        if informer is None or not rv:
            return None
        cached = informer.find(obj.metadata.namespace, obj.metadata.name)
        if cached is None or cached.metadata.resource_version != rv:
            return None
        return copy(cached)

    def follows(self, cls: type[Resource]) -> bool:
        return cls.KIND in self._informers

    def cached_all(self, cls: type[R]) -> list[R] | None:
        informer = self._informers.get(cls.KIND)
        if informer is None or not informer.synced:
            return None
        return informer.live()

    def cached(self, cls: type[R], name: str, namespace: str | None, *,
               at_least: int, shared: bool = False) -> R | None:
        informer = self._informers.get(cls.KIND)
        if informer is None or informer.applied < at_least:
            return None
        found = informer.find(namespace, name)
        return found if found is None or shared else copy(found)

    async def update(self, obj: R) -> R:
        return await self._write(obj, semantics.prepare_update)

    async def update_status(self, obj: R) -> R:
        return await self._write(obj, _status_only)

    async def delete(
        self,
        cls: type[R],
        name: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
    ) -> R | None:
        semantics.check_namespace(cls, namespace)
        semantics.check_name(cls, name)
        key = _key(cls.KIND, namespace, name)
        for attempt in range(_UNCONDITIONAL_RETRIES):
            stored = await self._get_entry(cls, name, namespace)
            out, remove = semantics.prepare_delete(stored, resource_version)
            if not remove and out is stored:
                return stored  # already being deleted, finalizers pending
            last = int(stored.metadata.resource_version or 0)
            try:
                rev = await self._put(
                    key, _without_rv(out), last=last, op="DELETED" if remove else "MODIFIED"
                )
            except Conflict:
                if resource_version or attempt + 1 >= _UNCONDITIONAL_RETRIES:
                    raise
                continue
            await self._committed("DELETED" if remove else "MODIFIED", _with_rv(out, rev))
            return None if remove else _with_rv(out, rev)
        raise AssertionError("unreachable")

    async def restore(self, obj: R, *, resource_version: str | None = None) -> R:
        """Write ``obj`` as given, keeping uid, generation, timestamps, owner references,
        finalizers and status: for moving objects between stores (bootstrap pivot, region
        link). Creates the object, or overwrites a stored one with the same uid; a stored
        object with another uid raises ``AlreadyExists``. ``obj``'s own resourceVersion is
        ignored; ``resource_version`` is a precondition on the stored one (``Conflict``).
        Only this backend has it: the Kubernetes API assigns uids and cannot preserve them.
        """
        semantics.check_namespace(type(obj), obj.metadata.namespace)
        if not obj.metadata.uid:
            raise Invalid("restore needs metadata.uid")
        key = _key(obj.kind, obj.metadata.namespace, obj.metadata.name)
        payload = _without_rv(obj)
        try:
            stored = await self._get_entry(type(obj), obj.metadata.name, obj.metadata.namespace)
        except NotFound:
            if resource_version:
                raise Conflict(f"{key}: not found at resourceVersion {resource_version}") from None
            last = max(await self._tombstone_rev(key), 0)
            try:
                rev = await self._put(key, payload, last=last, op="ADDED")
            except Conflict:
                raise AlreadyExists(f"{key}: created concurrently") from None
            return await self._committed("ADDED", _with_rv(obj, rev))
        if stored.metadata.uid != obj.metadata.uid:
            raise AlreadyExists(f"{key} exists with another uid ({stored.metadata.uid})")
        if resource_version and resource_version != stored.metadata.resource_version:
            raise Conflict(f"{key}: resourceVersion {resource_version} is stale")
        last = int(stored.metadata.resource_version or 0)
        rev = await self._put(key, payload, last=last, op="MODIFIED")
        return await self._committed("MODIFIED", _with_rv(obj, rev))

    # --- watch --------------------------------------------------------------------------

    async def watch(  # type: ignore[override]
        self,
        cls: type[R],
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
    ) -> AsyncIterator[WatchEvent[R]]:
        if resource_version in (None, "", "0"):
            items, rv = await self._snapshot(cls, namespace)
            for obj in items:
                yield WatchEvent(type="ADDED", object=obj)
            start = rv
        else:
            if namespace:
                semantics.check_namespace(cls, namespace)
            try:
                start = int(resource_version)
            except ValueError:
                raise Invalid(f"resourceVersion {resource_version!r} is not a version") from None
            state = (await self._js.stream_info(self._stream)).state
            if start > state.last_seq:
                raise Gone(f"resourceVersion {start} is beyond this store (at {state.last_seq}): "
                           "relist")
            if state.first_seq > start + 1:
                raise Gone(f"resourceVersion {start} is too old (the store keeps changes from "
                           f"{state.first_seq - 1}): relist")
        subject = f"$KV.{self.bucket}.{cls.KIND}." + (f"{namespace}.>" if namespace else ">")
        sub = await self._js.subscribe(
            subject,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            config=api.ConsumerConfig(opt_start_seq=start + 1),
        )
        history = _History(start, len(f"$KV.{self.bucket}."))
        try:
            # Read what is already stored before yielding any of it, so an expired version
            # fails before the first event (an HTTP 410 rather than an ERROR mid-stream).
            backlog: list[Msg] = []
            info = await sub.consumer_info()
            total = info.delivered.consumer_seq + info.num_pending
            while len(backlog) < total:
                try:
                    msg = await sub.next_msg(timeout=SNAPSHOT_TIMEOUT)
                except NatsTimeoutError:
                    raise Unavailable("the store stopped answering a watch") from None
                history.check(msg)
                backlog.append(msg)
                if msg.metadata.num_pending == 0:
                    break
            for msg in backlog:
                ev = _event(cls, msg)
                if ev is not None:
                    yield ev
            backlog.clear()
            # A cancellation that raced a server answer above may have been swallowed
            # (asyncio.wait_for in 3.11): waiting for live changes would then never end.
            raise_if_cancelling()
            async for msg in sub.messages:
                history.check(msg)
                ev = _event(cls, msg)
                if ev is not None:
                    yield ev
        finally:
            # Clean up on the side: awaiting nats-py's unsubscribe inside a task that is
            # being cancelled can stall that task's exit.
            task = asyncio.get_running_loop().create_task(close_subscription(sub))
            _CLEANUPS.add(task)
            task.add_done_callback(_CLEANUPS.discard)


def _event(cls: type[R], msg: Msg) -> WatchEvent[R] | None:
    return stored_event(cls, msg.headers, msg.data, msg.metadata.sequence.stream)


def stored_event(cls: type[R], headers: dict[str, str] | None, data: bytes, rev: int,
                 ) -> WatchEvent[R] | None:
    """The write one message of the bucket holds (headers, payload, stream sequence)."""
    op = (headers or {}).get(OP_HEADER)
    if not data or op not in ("ADDED", "MODIFIED", "DELETED"):
        return None  # a purge or a write from outside the store
    return WatchEvent(type=op, object=_with_rv(decode(cls, data), rev))


class _History:
    """Proves a watch from ``start`` sees every change after it, else raises ``Gone``.

    Per key, the first message after ``start`` must replace a revision at or before
    ``start`` and each later one the message before it; a write naming a revision that was
    never delivered means that revision was trimmed (or skipped by a lagging consumer).
    """

    def __init__(self, start: int, prefix: int) -> None:
        self.start = start
        self._prefix = prefix
        self._last: dict[str, int] = {}

    def check(self, msg: Msg) -> None:
        key = msg.subject[self._prefix:]
        headers = msg.headers or {}
        seen = self._last.get(key)
        if headers.get("KV-Operation") == "PURGE" and seen is None:
            raise Gone(f"resourceVersion {self.start} is too old: {key} was purged since; relist")
        prev = headers.get(PREV_HEADER)
        after = self.start if seen is None else seen
        if prev is not None and prev.isdigit() and int(prev) > after:
            raise Gone(f"resourceVersion {self.start} is too old: the change of {key} at "
                       f"{prev} is no longer kept; relist")
        self._last[key] = msg.metadata.sequence.stream


class _Entry(msgspec.Struct):
    key: str
    value: bytes
    revision: int
    operation: str


def _status_only(new: R, stored: R) -> tuple[R, bool]:
    return semantics.prepare_status(new, stored), False


def _ref(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def _sort_key(obj: Resource) -> str:
    return f"{obj.metadata.namespace or ''}/{obj.metadata.name}"
