"""JetStream event bus: one stream per prefix, deduplicated publishes, durable consumers.

JetStream delivers at least once. Publishes carry ``Nats-Msg-Id`` (the event id), so a
republished event inside the duplicate window is dropped by the server; consumers ack
explicitly after their handler succeeds and must be idempotent on redelivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api
from nats.js.errors import NotFoundError
from prometheus_client import Counter

from shared import metrics
from shared.bus.events import (
    ChangeEvent,
    EventType,
    decode_event,
    encode_event,
    event_for,
    stream_name,
    subject,
)
from shared.bus.fanout import Fanout, Listener, scope
from shared.bus.pull import StandingPull
from shared.models import GLOBAL_REGION, Resource
from shared.tasks import cancel_all, ignore_outcome, raise_if_cancelling

log = logging.getLogger(__name__)

Handler = Callable[[ChangeEvent], Awaitable[None]]

DEFAULT_DUPLICATE_WINDOW = 600.0
DEFAULT_MAX_AGE = 24 * 3600.0
DEFAULT_ACK_WAIT = 30.0
NAK_DELAY = 1.0
ANNOUNCE_STALL = 5.0  # seconds a write waits for a free slot (4,000 unacked announces)
ANNOUNCE_ACK_TIMEOUT = 30.0


class Bus:
    """Publisher/consumer of change events; the caller owns the NATS connection."""

    def __init__(self, nc: NATS, *, prefix: str = "ccloud", service: str = "") -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.prefix = prefix
        self.stream = stream_name(prefix)
        self.service = service
        self._consumers: list[Consumer] = []
        self.fanouts: dict[str, Fanout] = {}  # durable -> the fan-out of one kind and scope
        self.fanout_lock = asyncio.Lock()
        self._durables: set[str] | None = None  # on the stream when first asked to retire

    async def start(self) -> None:
        config = api.StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.>"],
            storage=api.StorageType.FILE,
            duplicate_window=DEFAULT_DUPLICATE_WINDOW,
            max_age=DEFAULT_MAX_AGE,
            allow_direct=True,  # the bridge reads what was announced in batches
        )
        try:
            info = await self.js.stream_info(self.stream)
        except NotFoundError:
            await self.js.add_stream(config)
            return
        if not info.config.allow_direct:  # made by an earlier version
            info.config.allow_direct = True
            await self.js.update_stream(info.config)

    def subject(self, region: str, kind: str, verb: str = "*") -> str:
        return subject(self.prefix, region, kind, verb)

    async def publish(self, event: ChangeEvent) -> bool:
        """Publish once; returns False when the server dropped it as a duplicate."""
        ack = await self.js.publish(
            self.subject(event.region, event.kind, event.verb),
            encode_event(event),
            headers={"Nats-Msg-Id": event.id},
        )
        if not ack.duplicate:
            metrics.EVENTS_OUT.labels(self.service, event.kind).inc()
        return not ack.duplicate

    async def consume(
        self,
        durable: str,
        subjects: list[str],
        handler: Handler,
        *,
        batch: int = 64,
        deliver_new: bool = True,
        ack_wait: float = DEFAULT_ACK_WAIT,
    ) -> Consumer:
        """Run ``handler`` for every event on ``subjects`` until the consumer is stopped.

        ``ack_wait``: how long a delivered event may stay unacknowledged (its consumer
        crashed or hangs) before JetStream delivers it again; set when the durable consumer
        is created."""
        consumer = Consumer(self, durable, subjects, handler, batch=batch,
                            deliver_new=deliver_new, ack_wait=ack_wait)
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    async def retire(self, durables: list[str]) -> None:
        """Delete these durable consumers if the stream has them: ones an earlier version
        read and this one does not (best effort; what the stream holds is asked once)."""
        if self._durables is None:
            try:
                self._durables = {c.name for c in await self.js.consumers_info(self.stream)}
            except Exception as e:
                raise_if_cancelling()
                log.debug("listing the consumers of %s failed: %r", self.stream, e)
                self._durables = set()
        for durable in (d.replace(".", "_") for d in durables):
            if durable not in self._durables:
                continue
            self._durables.discard(durable)
            try:
                await self.js.delete_consumer(self.stream, durable)
                log.info("deleted the durable consumer %s, which nothing reads any more", durable)
            except Exception as e:
                raise_if_cancelling()
                log.debug("deleting the durable consumer %s failed: %r", durable, e)

    async def release(self, consumer: Consumer) -> None:
        """Stop ``consumer`` and forget it (a service whose leadership comes and goes
        starts and stops its consumers many times)."""
        await consumer.stop()
        with contextlib.suppress(ValueError):
            self._consumers.remove(consumer)

    async def listen(self, kind: str, region: str | None, handler: Handler, *,
                     with_global: bool = False) -> Listener:
        """Run ``handler`` for every event of ``kind`` in ``region`` (None: every region;
        ``with_global``: global objects too) until the listener is stopped, through the one
        durable consumer this service holds for that kind and region (``shared.bus.fanout``).
        """
        part, subjects = scope(self.prefix, kind, region)
        regions = None if region is None else frozenset(
            {region, GLOBAL_REGION} if with_global else {region})
        durable = f"{self.service or 'bus'}-{part}-{kind.lower()}"
        async with self.fanout_lock:
            fanout = self.fanouts.get(durable)
            if fanout is None:
                fanout = self.fanouts[durable] = Fanout(self, durable, subjects)
            listener = Listener(fanout, handler, regions)
            fanout.listeners.append(listener)
            if fanout.consumer is None:
                try:
                    fanout.consumer = await self.consume(durable, subjects, fanout.dispatch)
                except BaseException:
                    fanout.listeners.remove(listener)
                    self.fanouts.pop(durable, None)
                    raise
        return listener

    def _stall(self) -> float | None:
        """How long a send may wait for a free slot: None (no timer) while one is free.
        nats-py waits for its slot under ``asyncio.wait_for``, which with a timeout runs
        the wait as a task of its own - a task and a timer per announce, most of what an
        announce cost a writer. The slots are nats-py's private semaphore; if that is ever
        gone every send takes the timeout, as before."""
        slots = getattr(self.js, "_publish_async_pending_semaphore", None)
        if isinstance(slots, asyncio.Semaphore) and not slots.locked():
            return None
        return ANNOUNCE_STALL

    async def send(self, event: ChangeEvent) -> asyncio.Future[bool]:
        """Publish without waiting for the stream's ack; the future resolves as ``publish``
        returns (False: a duplicate) or fails, and is cancelled if no ack comes within
        ``ANNOUNCE_ACK_TIMEOUT``. Sends queued together leave in one socket write, where
        ``publish`` pays a write and a round trip per event."""
        ack = await self.js.publish_async(
            self.subject(event.region, event.kind, event.verb),
            encode_event(event),
            headers={"Nats-Msg-Id": event.id},
            wait_stall=self._stall(),
        )
        # nats-py never gives up on an ack itself; an unanswered one would hold its slot.
        timer = asyncio.get_running_loop().call_later(ANNOUNCE_ACK_TIMEOUT, ack.cancel)
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def settle(f: asyncio.Future) -> None:
            timer.cancel()
            if done.done():
                return
            if f.cancelled():
                done.cancel()
            elif (e := f.exception()) is not None:
                done.set_exception(e)
            else:
                fresh = not f.result().duplicate
                if fresh:
                    metrics.EVENTS_OUT.labels(self.service, event.kind).inc()
                done.set_result(fresh)

        ack.add_done_callback(settle)
        return done

    async def announce(self, type_: EventType, obj: Resource) -> None:
        """Store commit hook: publish the event for a write the store just committed.

        The write path does not wait for the stream's ack (a round trip per write): the
        bridge tailing the store republishes every event under the same id, so an event
        lost here arrives a moment later instead, and the duplicate is dropped.
        """
        sent = await self.send(event_for(type_, obj))
        sent.add_done_callback(ignore_outcome)  # the bridge covers a failure

    async def stop(self) -> None:
        for c in self._consumers:
            await c.stop()
        self._consumers.clear()
        self.fanouts.clear()
        with contextlib.suppress(TimeoutError):  # let announced events reach the stream
            await asyncio.wait_for(self.js.publish_async_completed(), ANNOUNCE_STALL)


class Consumer:
    """One durable consumer and the task that feeds its handler, through a standing pull
    request (``shared.bus.pull``)."""

    def __init__(
        self,
        bus: Bus,
        durable: str,
        subjects: list[str],
        handler: Handler,
        *,
        batch: int,
        deliver_new: bool,
        ack_wait: float = DEFAULT_ACK_WAIT,
    ) -> None:
        self.bus = bus
        self.ack_wait = ack_wait
        self.durable = durable.replace(".", "_")
        self.subjects = subjects
        self.handler = handler
        self.deliver_new = deliver_new
        self.messages = StandingPull(bus.nc, bus.stream, self.durable, batch=batch,
                                     ensure=self._ensure)
        self._task: asyncio.Task[None] | None = None
        self._events_in: dict[str, Counter] = {}  # kind -> metric child

    async def start(self) -> None:
        await self._ensure()
        await self.messages.start()
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.durable}")

    async def _ensure(self) -> None:
        """Create the durable consumer, or re-create it if its filter changed."""
        js = self.bus.js
        try:
            info = await js.consumer_info(self.bus.stream, self.durable)
            if sorted(info.config.filter_subjects or [info.config.filter_subject or ""]) != sorted(
                self.subjects
            ):
                await js.delete_consumer(self.bus.stream, self.durable)
                raise NotFoundError
        except NotFoundError:
            await js.add_consumer(
                self.bus.stream,
                api.ConsumerConfig(
                    durable_name=self.durable,
                    filter_subjects=self.subjects,
                    ack_policy=api.AckPolicy.EXPLICIT,
                    ack_wait=self.ack_wait,
                    deliver_policy=(
                        api.DeliverPolicy.NEW if self.deliver_new else api.DeliverPolicy.ALL
                    ),
                    max_ack_pending=10_000,
                ),
            )

    async def _run(self) -> None:
        while True:
            msg = await self.messages.next()
            try:
                await self._deliver(msg)
            except Exception as e:  # an ack or nak lost with the connection: it comes again
                raise_if_cancelling()
                log.warning("consumer %s: settling a message failed: %r", self.durable, e)

    async def _deliver(self, msg: Msg) -> None:
        try:
            event = decode_event(msg.data)
        except msgspec.DecodeError:
            log.error("consumer %s: dropping malformed event on %s", self.durable, msg.subject)
            await msg.term()
            return
        counter = self._events_in.get(event.kind)
        if counter is None:
            counter = self._events_in[event.kind] = metrics.EVENTS_IN.labels(
                self.bus.service, event.kind)
        counter.inc()
        try:
            await self.handler(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            raise_if_cancelling()
            log.exception("consumer %s: handler failed for %s", self.durable, event.id)
            await msg.nak(delay=NAK_DELAY)
            return
        await msg.ack()

    async def stop(self) -> None:
        if self._task:
            await cancel_all([self._task])
            self._task = None
        await self.messages.stop()
