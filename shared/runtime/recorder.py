"""Recorded events, like client-go's EventRecorder: condition changes kept for a while.

A controller's status write that changes a condition (a new type, or a new status or
reason) records an event naming the object. Events are high-volume and short-lived, so
they live in a JetStream stream of their own (``<PREFIX>_RECORDED``, subjects
``<prefix>-recorded.<namespace or _>.<kind>.<name>``, outside the bus's ``<prefix>.>``)
with a maximum age and message count, never in the object store.

Recording never fails or slows a reconcile: ``record`` only puts the event on a bounded
queue that one task publishes from; when the queue is full the event is dropped and
counted. Identical events (same object, type, reason, message and reporter) within
``aggregate_window`` are aggregated as Kubernetes does: the same event name is published
again with ``count`` + 1 and a new ``lastTimestamp``; readers keep the latest copy.

Which recorder a status write uses comes from the context: a ``Controller`` binds its
recorder and name in its workers (``bind``); writes outside a controller use the process
default (the recorder of the last controller started), reporting as the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from typing import Literal

import msgspec
from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import BadRequestError, NotFoundError
from prometheus_client import Counter

from shared.models import Condition, Resource, Status, now
from shared.tasks import cancel_all, raise_if_cancelling

log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]

DEFAULT_MAX_AGE = 3600.0
DEFAULT_MAX_MSGS = 100_000
MAX_MSGS_PER_OBJECT = 500  # bounds what one read of an object's events can cost
DEFAULT_QUEUE = 1024
DEFAULT_AGGREGATE_WINDOW = 600.0  # seconds, as client-go's event correlator
PUBLISH_TIMEOUT = 2.0
MAX_MESSAGE = 1024
CACHE_SIZE = 4096

RECORDED = Counter("ccloud_recorded_events_total", "Events recorded", ["controller", "type"])
DROPPED = Counter("ccloud_recorded_events_dropped_total",
                  "Events dropped instead of delaying a reconcile", ["reason"])
_DROPPED_QUEUE_FULL = DROPPED.labels("queue_full")


class InvolvedObject(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    kind: str
    namespace: str | None = None
    name: str
    uid: str = ""


class Event(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One recorded event; ``name`` stays the same while the event is aggregated."""

    name: str
    type: EventType
    reason: str
    message: str
    involved_object: InvolvedObject
    count: int = 1
    first_timestamp: str
    last_timestamp: str
    reporting_controller: str = ""


_encode = msgspec.json.Encoder().encode
_decoder = msgspec.json.Decoder(Event)


def decode(data: bytes) -> Event:
    return _decoder.decode(data)


def stream_name(prefix: str) -> str:
    return f"{prefix.upper().replace('.', '_')}_RECORDED"


def subject_root(prefix: str) -> str:
    return f"{prefix}-recorded"


def subject(prefix: str, kind: str, namespace: str | None, name: str) -> str:
    """One object's subject. Names may hold dots (a NATS token separator) but never ``_``,
    and namespaces never ``_``, so the encoding cannot collide."""
    return f"{subject_root(prefix)}.{namespace or '_'}.{kind.lower()}.{name.replace('.', '_')}"


async def ensure_stream(
    nc: NATS, prefix: str, *, max_age: float = DEFAULT_MAX_AGE, max_msgs: int = DEFAULT_MAX_MSGS
) -> str:
    """Create the events stream unless it exists (any recorder or reader may be first)."""
    js = nc.jetstream()
    name = stream_name(prefix)
    try:
        await js.stream_info(name)
    except NotFoundError:
        config = api.StreamConfig(
            name=name,
            subjects=[f"{subject_root(prefix)}.>"],
            storage=api.StorageType.FILE,
            max_age=max_age,
            max_msgs=max_msgs,
            max_msgs_per_subject=MAX_MSGS_PER_OBJECT,
            discard=api.DiscardPolicy.OLD,
        )
        with contextlib.suppress(BadRequestError):  # created meanwhile by another process
            await js.add_stream(config)
    return name


def _changes(
    before: list[Condition], after: list[Condition]
) -> Iterator[tuple[Condition, Condition | None]]:
    """Conditions of ``after`` that are new or whose status or reason changed."""
    old = {c.type: c for c in before}
    for c in after:
        p = old.get(c.type)
        if p is None or p.status != c.status or p.reason != c.reason:
            yield c, p


def event_type(c: Condition) -> EventType:
    return "Warning" if c.status == "False" and c.severity in ("Warning", "Error") else "Normal"


def describe_change(c: Condition, prev: Condition | None) -> str:
    """``Ready False (was True): disk failed``: says what the transition was, so a flap
    back and forth aggregates per direction and no direction hides another."""
    text = f"{c.type} {c.status}"
    if prev is not None and prev.status != c.status:
        text += f" (was {prev.status})"
    elif prev is not None:
        text += f" (reason was {prev.reason or '<none>'})"
    if c.message:
        text += f": {c.message}"
    return text[:MAX_MESSAGE]


class Recorder:
    """Publishes events for one process from a bounded queue; see the module docstring."""

    def __init__(
        self,
        nc: NATS,
        *,
        prefix: str = "ccloud",
        source: str = "",
        max_queue: int = DEFAULT_QUEUE,
        aggregate_window: float = DEFAULT_AGGREGATE_WINDOW,
        max_age: float = DEFAULT_MAX_AGE,
        max_msgs: int = DEFAULT_MAX_MSGS,
    ) -> None:
        self.nc = nc
        self.prefix = prefix
        self.source = source
        self.aggregate_window = aggregate_window
        self.max_age = max_age
        self.max_msgs = max_msgs
        self.queue: asyncio.Queue[tuple[str, Event]] = asyncio.Queue(max_queue)
        self.dropped = 0
        self.published = 0
        self._recent: OrderedDict[tuple, tuple[Event, float]] = OrderedDict()
        self._seen: OrderedDict[str, list[Condition]] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._stream_ready = False
        self._closed = False

    # --- recording (synchronous, never blocks) ------------------------------------------

    def record(
        self, obj: Resource, type_: EventType, reason: str, message: str, *, controller: str = ""
    ) -> Event | None:
        """Queue one event about ``obj``; returns None when it was dropped (queue full)."""
        if self.queue.full():  # known before the event is built: a region at full tilt
            self.dropped += 1  # drops thousands a second
            _DROPPED_QUEUE_FULL.inc()
            return None
        md = obj.metadata
        involved = InvolvedObject(kind=obj.KIND, namespace=md.namespace, name=md.name,
                                  uid=md.uid or "")
        source = controller or self.source
        key = (involved.uid or f"{obj.KIND}/{md.namespace}/{md.name}", type_, reason,
               message, source)
        stamp, mono = now(), time.monotonic()
        prior = self._recent.get(key)
        if prior is not None and mono - prior[1] <= self.aggregate_window:
            ev = msgspec.structs.replace(prior[0], count=prior[0].count + 1, last_timestamp=stamp)
        else:
            ev = Event(name=f"{md.name}.{uuid.uuid4().hex[:16]}", type=type_, reason=reason,
                       message=message, involved_object=involved, first_timestamp=stamp,
                       last_timestamp=stamp, reporting_controller=source)
        self.queue.put_nowait((subject(self.prefix, obj.KIND, md.namespace, md.name), ev))
        self._recent[key] = (ev, mono)
        self._recent.move_to_end(key)
        while len(self._recent) > CACHE_SIZE:
            self._recent.popitem(last=False)
        RECORDED.labels(source, type_).inc()
        self._ensure_running()
        return ev

    def record_conditions(
        self, obj: Resource, before: Status | None, after: Status, *, controller: str = ""
    ) -> int:
        """Record one event per condition ``after`` adds or changes relative to ``before``
        (None: the conditions this recorder last saw written for the object, if any)."""
        uid = obj.metadata.uid or ""
        if before is not None:
            old: list[Condition] | None = before.conditions
        else:
            old = self._seen.get(uid)
        if uid:
            self._seen[uid] = [msgspec.structs.replace(c) for c in after.conditions]
            self._seen.move_to_end(uid)
            while len(self._seen) > CACHE_SIZE:
                self._seen.popitem(last=False)
        if old is None:  # nothing known to compare with: guessing would repeat old events
            return 0
        n = 0
        for c, prev in _changes(old, after.conditions):
            reason = c.reason or f"{c.type}{c.status}"
            if self.record(obj, event_type(c), reason, describe_change(c, prev),
                           controller=controller) is not None:
                n += 1
        return n

    # --- publishing ------------------------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._closed:
            return
        if self._task is None or self._task.done():
            try:
                self._task = asyncio.get_running_loop().create_task(
                    self._pump(), name="event-recorder")
            except RuntimeError:  # no loop: nothing can publish; the queue bounds the cost
                self._task = None

    async def start(self) -> None:
        self._closed = False
        self._ensure_running()

    async def _pump(self) -> None:
        js = self.nc.jetstream()
        while True:
            subj, ev = await self.queue.get()
            try:
                if not self._stream_ready:
                    await ensure_stream(self.nc, self.prefix, max_age=self.max_age,
                                        max_msgs=self.max_msgs)
                    self._stream_ready = True
                await js.publish(subj, _encode(ev), timeout=PUBLISH_TIMEOUT)
                self.published += 1
                raise_if_cancelling()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # events are best effort; the reconcile went on already
                self._stream_ready = False
                DROPPED.labels("publish_failed").inc()
                log.debug("event %s not recorded: %s", ev.name, e)
            finally:
                self.queue.task_done()

    async def flush(self, timeout: float = PUBLISH_TIMEOUT) -> None:
        """Wait (bounded) until every queued event was published or given up."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout)

    async def stop(self, timeout: float = PUBLISH_TIMEOUT) -> None:
        """Publish what is queued (for at most ``timeout`` seconds), then stop."""
        await self.flush(timeout)
        self._closed = True
        if self._task is not None:
            await cancel_all([self._task])
            self._task = None
        if _default is self:
            uninstall_default(self)


# --- which recorder a status write uses ------------------------------------------------

_bound: contextvars.ContextVar[tuple[Recorder, str] | None] = contextvars.ContextVar(
    "event_recorder", default=None)
_default: Recorder | None = None


def bind(recorder: Recorder | None, controller: str) -> None:
    """Record the current task's (and its children's) status writes as ``controller``."""
    _bound.set((recorder, controller) if recorder is not None else None)


@contextlib.contextmanager
def recording(recorder: Recorder, controller: str) -> Iterator[None]:
    token = _bound.set((recorder, controller))
    try:
        yield
    finally:
        _bound.reset(token)


def install_default(recorder: Recorder) -> None:
    global _default
    _default = recorder


def uninstall_default(recorder: Recorder) -> None:
    global _default
    if _default is recorder:
        _default = None


def current() -> tuple[Recorder, str] | None:
    bound = _bound.get()
    if bound is not None:
        return bound
    return (_default, _default.source) if _default is not None else None


def record_status_change(obj: Resource, before: Status | None, after: Status) -> None:
    """The status write path's hook: never raises, never waits."""
    target = current()
    if target is None:
        return
    recorder, controller = target
    try:
        recorder.record_conditions(obj, before, after, controller=controller)
    except Exception as e:  # a bug here must not fail the write that already happened
        log.warning("recording events for %s %s failed: %s", obj.KIND, obj.metadata.name, e)


_shared: dict[tuple[int, str], tuple[Recorder, int]] = {}


def acquire(nc: NATS, prefix: str, source: str) -> Recorder:
    """The process's recorder for one NATS connection and prefix (reference counted)."""
    key = (id(nc), prefix)
    rec, refs = _shared.get(key, (None, 0))
    if rec is None:
        rec = Recorder(nc, prefix=prefix, source=source)
    _shared[key] = (rec, refs + 1)
    install_default(rec)
    return rec


async def release(recorder: Recorder) -> None:
    key = (id(recorder.nc), recorder.prefix)
    rec, refs = _shared.get(key, (None, 0))
    if rec is not recorder:
        return
    if refs > 1:
        _shared[key] = (rec, refs - 1)
        return
    del _shared[key]
    await recorder.stop()


# --- reading ---------------------------------------------------------------------------

STREAM_NOT_FOUND = 10059
DEFAULT_READ_TIMEOUT = 3.0


async def read(
    nc: NATS,
    prefix: str,
    kind: str,
    namespace: str | None,
    name: str,
    *,
    uid: str = "",
    limit: int = 50,
    timeout: float = DEFAULT_READ_TIMEOUT,
) -> list[Event]:
    """One object's recent events, newest first, the latest copy of each aggregated event.

    An ordered (ephemeral) consumer filtered on the object's subject reads up to the last
    message the stream held when the read began, or until ``timeout`` (then returns what
    it has). ``uid`` skips the events of an earlier object of the same name.
    """
    js = nc.jetstream()
    stream = stream_name(prefix)
    subj = subject(prefix, kind, namespace, name)
    try:
        last = await js.get_last_msg(stream, subj)
    except NotFoundError as e:
        if e.err_code == STREAM_NOT_FOUND:
            await ensure_stream(nc, prefix)
        return []
    assert last.seq is not None
    latest: dict[str, tuple[int, Event]] = {}
    sub = await js.subscribe(subj, stream=stream, ordered_consumer=True,
                             deliver_policy=api.DeliverPolicy.ALL)
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await sub.next_msg(timeout=left)
            except TimeoutError:
                log.warning("events of %s %s: read incomplete after %.1fs", kind, name, timeout)
                break
            seq = msg.metadata.sequence.stream
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                ev = decode(msg.data)
                if not uid or not ev.involved_object.uid or ev.involved_object.uid == uid:
                    latest[ev.name] = (seq, ev)
            if seq >= last.seq:
                break
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sub.unsubscribe(), 2.0)
    ordered = sorted(latest.values(), key=lambda p: (p[1].last_timestamp, p[0]), reverse=True)
    return [ev for _, ev in ordered[:limit]]
