"""Level-triggered controllers: events only enqueue keys, reconcilers read the store.

A ``Controller`` owns one work queue and one kind. It fills the queue from a full resync
on start (and every ``resync_period``), from the bus events of its kind in its region, and
from events of secondary kinds mapped to owner keys (``Watch``). Workers process distinct
keys concurrently, never one key twice at once. A reconcile woken by a write of its object
reads it from the store's cache when that has applied the write, else from the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from prometheus_client import Counter, Histogram

from shared import metrics
from shared.bus import Bus, ChangeEvent, Listener
from shared.models import Resource
from shared.runtime import recorder as events
from shared.runtime.errors import PermanentError, TransientError
from shared.runtime.paused import PARENT_PAUSED_RECHECK, paused_by
from shared.runtime.queue import ShutDown, WorkQueue
from shared.store import NotFound, Store, prefetch
from shared.tasks import cancel_all, raise_if_cancelling

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Request:
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True)
class Result:
    requeue_after: float | None = None

    @staticmethod
    def done() -> Result:
        return Result()


class Reconciler(Protocol):
    async def reconcile(self, req: Request) -> Result | None: ...


@runtime_checkable
class Startable(Protocol):
    """A reconciler with state of its own (a cache, a watch) to set up before its first
    reconcile and release when its controller stops."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


Mapper = Callable[[ChangeEvent], Iterable[Request]]
OUTCOMES = ("success", "paused", "not_found", "requeue", "permanent_error", "error")


@dataclass(frozen=True)
class Watch:
    """Events of ``kind`` that enqueue the requests ``mapper`` returns.

    ``delay`` batches: a request is enqueued that long after the first event mapped to it,
    and later events within the window join it. A parent whose children change in bursts
    (a cluster's machines all progressing at once) is then reconciled once per burst, not
    once per child write, each of which lists all the children again.
    """

    kind: type[Resource]
    mapper: Mapper
    delay: float = 0.0


def owned_by(owner_kind: str) -> Mapper:
    """Map an event to its owner of ``owner_kind`` (same namespace)."""

    def mapper(ev: ChangeEvent) -> Iterable[Request]:
        return [Request(o.name, ev.namespace) for o in ev.owners if o.kind == owner_kind]

    return mapper


def by_label(label: str) -> Mapper:
    """Map an event to the object named by one of its labels (same namespace)."""

    def mapper(ev: ChangeEvent) -> Iterable[Request]:
        value = ev.labels.get(label)
        return [Request(value, ev.namespace)] if value else []

    return mapper


@dataclass
class Controller:
    name: str
    kind: type[Resource]
    reconciler: Reconciler
    store: Store
    bus: Bus
    region: str | None = None
    workers: int = 4
    watches: list[Watch] = field(default_factory=list)
    resync_period: float | None = 300.0
    queue: WorkQueue[Request] = field(default_factory=WorkQueue)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _listeners: list[Listener] = field(default_factory=list)
    reconciled: int = 0
    # Condition changes this controller writes are recorded as events (reportingController
    # = ``name``); None with ``record_events`` takes the process's shared recorder.
    recorder: events.Recorder | None = None
    record_events: bool = True
    _own_recorder: bool = False
    # Queued keys -> the newest revision an event of theirs announced: the reconcile may
    # read its object from the store's cache once that cache has applied this revision.
    _announced: dict[Request, int] = field(default_factory=dict)
    # This controller's metric children, looked up once (labels() per reconcile adds up).
    _reconciles: dict[str, Counter] = field(init=False)
    _seconds: Histogram = field(init=False)
    _cached_reads: dict[bool, Counter] = field(init=False)

    def __post_init__(self) -> None:
        self._reconciles = {outcome: metrics.RECONCILES.labels(self.name, outcome)
                            for outcome in OUTCOMES}
        self._seconds = metrics.RECONCILE_SECONDS.labels(self.name)
        self._cached_reads = {hit: metrics.CACHED_READS.labels(self.name, outcome)
                              for hit, outcome in ((True, "hit"), (False, "miss"))}

    def in_scope(self, obj: Resource) -> bool:
        return self.region is None or obj.region() == self.region

    async def start(self) -> None:
        if isinstance(self.reconciler, Startable):
            await self.reconciler.start()
        self.queue = WorkQueue()
        self._announced.clear()
        # Read at scrape time: no gauge update per event and per reconcile.
        metrics.QUEUE_DEPTH.labels(self.name).set_function(lambda: len(self.queue))
        if self.recorder is None and self.record_events:
            self.recorder = events.acquire(self.bus.nc, self.bus.prefix,
                                           self.bus.service or self.name)
            self._own_recorder = True
        # The process's consumer of each kind is shared by its controllers (shared.bus.fanout);
        # the consumers of one controller each, as versions before it held, go.
        legacy = f"{self.name}-{self.region or 'all'}"
        await self.bus.retire([legacy, *(f"{legacy}-w{i}-{w.kind.KIND.lower()}"
                                         for i, w in enumerate(self.watches))])
        self._listeners.append(
            await self.bus.listen(self.kind.KIND, self.region, self._on_primary)
        )
        for w in self.watches:
            self._listeners.append(
                await self.bus.listen(w.kind.KIND, self.region, self._mapped(w.mapper, w.delay),
                                      with_global=True)
            )
        await self.resync()
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"{self.name}:worker{i}")
            for i in range(self.workers)
        ]
        if self.resync_period:
            self._tasks.append(asyncio.create_task(self._periodic_resync()))

    async def stop(self) -> None:
        for listener in self._listeners:
            await listener.stop()
        self._listeners.clear()
        await self.queue.shutdown()
        metrics.QUEUE_DEPTH.labels(self.name).set_function(lambda: 0)
        await cancel_all(self._tasks)
        self._tasks.clear()
        if isinstance(self.reconciler, Startable):
            await self.reconciler.stop()
        if self._own_recorder and self.recorder is not None:
            await events.release(self.recorder)
            self.recorder, self._own_recorder = None, False

    async def resync(self) -> None:
        for obj in await self.store.list_all(self.kind):
            if self.in_scope(obj):
                self.queue.add(Request(obj.metadata.name, obj.metadata.namespace))

    async def _periodic_resync(self) -> None:
        assert self.resync_period
        while True:
            await asyncio.sleep(self.resync_period)
            try:
                await self.resync()
            except Exception as e:
                raise_if_cancelling()
                log.warning("%s: resync failed: %s", self.name, e)

    async def _on_primary(self, ev: ChangeEvent) -> None:
        req = Request(ev.name, ev.namespace)
        if ev.type != "DELETED" and ev.resource_version.isdigit():
            rv = int(ev.resource_version)
            if rv > self._announced.get(req, 0):
                self._announced[req] = rv
        self.queue.add(req)

    def _mapped(self, mapper: Mapper, delay: float):
        async def handler(ev: ChangeEvent) -> None:
            for req in mapper(ev):
                self.queue.add_after(req, delay)

        return handler

    async def _worker(self) -> None:
        events.bind(self.recorder, self.name)  # this task's status writes report as us
        while True:
            try:
                req = await self.queue.get()
            except ShutDown:
                return
            try:
                await self._process(req)
            finally:
                self.queue.done(req)

    def _offer_cached(self, req: Request) -> None:
        """Woken by a write: read the object from the cache if it has applied that write
        (as controller-runtime reads from its informer), saving the store round trip."""
        at_least = self._announced.pop(req, 0)
        if not at_least:
            return
        obj = self.store.cached(self.kind, req.name, req.namespace, at_least=at_least)
        self._cached_reads[obj is not None].inc()
        if obj is not None:
            prefetch.offer(obj)

    async def _process(self, req: Request) -> None:
        start = time.perf_counter()
        outcome = "success"
        try:
            with prefetch.scope():  # the reconcile's first reads reuse the pause check's
                self._offer_cached(req)
                paused = await paused_by(self.store, self.kind, req.name, req.namespace)
                if paused is None:
                    result = await self.reconciler.reconcile(req) or Result()
                else:  # left alone; unpausing the object is a write, so its event follows
                    outcome = "paused"
                    result = Result(None if paused == "object" else PARENT_PAUSED_RECHECK)
        except asyncio.CancelledError:
            raise
        except NotFound:
            self.queue.forget(req)
            outcome = "not_found"
        except TransientError as e:
            outcome = "requeue"
            log.info("%s %s: %s (retry in %.1fs)", self.name, req, e, e.delay)
            self.queue.add_after(req, e.delay)
        except PermanentError as e:
            outcome = "permanent_error"
            metrics.RECONCILE_ERRORS.labels(self.name, "permanent").inc()
            log.warning("%s %s: %s (not retried until it changes)", self.name, req, e)
            self.queue.forget(req)
        except Exception as e:
            raise_if_cancelling()
            outcome = "error"
            metrics.RECONCILE_ERRORS.labels(self.name, type(e).__name__).inc()
            delay = self.queue.backoff(req)
            log.warning("%s %s: %s: %s (retry in %.2fs)", self.name, req, type(e).__name__, e,
                        delay, exc_info=log.isEnabledFor(logging.DEBUG))
            self.queue.add_after(req, delay)
        else:
            self.queue.forget(req)
            if result.requeue_after is not None:
                self.queue.add_after(req, result.requeue_after)
        finally:
            self.reconciled += 1
            self._reconciles[outcome].inc()
            self._seconds.observe(time.perf_counter() - start)
