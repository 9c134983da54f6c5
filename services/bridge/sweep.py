"""The bridge's safety net where writers announce their own events (the embedded store).

A writer to the embedded store announces each write right after its commit, so the bridge
has only to find the writes whose writer died in between. Tailing the bucket for them woke
the bridge on every write and republished every event for the stream to drop as a
duplicate: at 1,000 writes/s the bridge took a sixth of the path's CPU and, waking with
every write, lengthened the event latency's tail by a third (bench/README.md). A sweep
instead looks a few times a second at what the bucket and the event stream took since its
last look (batched direct gets: a few socket reads for a thousand messages) and publishes
the events of the writes read at least ``ANNOUNCE_GRACE`` ago that still have none. Each
write still yields exactly one event: an announce later than the sweep's copy carries the
same id, and the stream keeps one. A write's event is about the grace and a look late when
its writer died. (Judged one look after it was read, 50 ms, a write of a busy writer was
often not announced yet: at 3,000 machines on 2 cores the sweep sent 5% of all events
itself, each counted as a dead writer's.)

The resume point (every write up to it has an acknowledged event) is saved in the
checkpoint bucket under ``SWEPT``. Writes from there to the bucket's end at start are
published whatever the event stream holds (their announces may predate what the sweep
reads of it; the stream drops the copies), as a restarted tail replays from its checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import KeyNotFoundError, NotFoundError

from services.bridge.publisher import CHECKPOINT_INTERVAL
from shared import metrics
from shared.bus import Bus, event_for
from shared.models import ALL_KINDS, Resource
from shared.natsutil import api_prefix, open_bucket, read_stream
from shared.store.kv import KVStore, stored_event
from shared.store.lastseq import LastSeq
from shared.tasks import cancel_all, ignore_outcome, raise_if_cancelling

log = logging.getLogger(__name__)

# Looks follow each other this far apart while writes come, so each handles a few dozen
# of them (a longer pause piles them into bursts that hold a core while the write path
# needs it); with nothing written the pause doubles up to IDLE_INTERVAL.
SWEEP_INTERVAL = 0.05
IDLE_INTERVAL = 0.5
# At most this many writes are read per look (the rest at the next, 50 ms on): a bridge
# back after a long outage works through the backlog in bounded steps. Announces are read
# up to twice as many (one read behind only costs copies the stream drops).
WRITES_PER_LOOK = 10_000
SWEPT = "swept"  # the checkpoint key
# A write is judged once read this long ago: its writer announces it right after the
# commit, but a writer whose event loop is saturated may send that a good while later.
ANNOUNCE_GRACE = 0.25


@dataclass(frozen=True, slots=True)
class _Write:
    seq: int
    kind: type[Resource]
    headers: dict[str, str]
    data: bytes
    read_at: float  # time.monotonic() of the look that read it


class AnnouncedSweep:
    """Publishes the events of writes to ``store`` that nobody announced."""

    def __init__(
        self,
        store: KVStore,
        bus: Bus,
        nc: NATS,
        *,
        kinds: tuple[type[Resource], ...] = ALL_KINDS,
        checkpoint_bucket: str = "ccloud-bridge",
        interval: float = SWEEP_INTERVAL,
        grace: float = ANNOUNCE_GRACE,
    ) -> None:
        self.store = store
        self.bus = bus
        self.nc = nc
        self.interval = interval
        self.grace = grace
        self.published = 0  # events acknowledged by the stream (duplicates included)
        self.resends = 0  # sweeps whose events were not all acknowledged (sent again)
        self.checkpoint_bucket = checkpoint_bucket
        self._kinds = {k.KIND: k for k in kinds}
        self._js = nc.jetstream()
        prefix = api_prefix(self._js)
        self._bucket_end = LastSeq(nc, store.stream, api_prefix=prefix)
        self._events_end = LastSeq(nc, bus.stream, api_prefix=prefix)
        self._subject_at = len(f"$KV.{store.bucket}.")
        self._kv = None
        self._task: asyncio.Task[None] | None = None
        self._swept = 0  # every write up to here has an acknowledged event
        self._saved = -1
        self._saved_at = 0.0
        self._read = 0  # writes read up to here (those after _swept wait for the next look)
        self._events_read = 0
        self._replay_to = 0  # writes up to here are published whatever the stream holds
        self._unjudged: list[_Write] = []
        self._announced: set[tuple[str, int]] = set()  # (kind, revision) with an event
        self._positions: dict[str, str] = {}

    async def start(self) -> None:
        self._kv = await open_bucket(self._js, api.KeyValueConfig(
            bucket=self.checkpoint_bucket, history=1))
        # The event stream's end first: a write committed after the bucket's end below is
        # announced after this point, so the sweep reads its announce.
        self._events_read = await self._events_end()
        end = await self._bucket_end()
        saved = await self._load()
        self._swept = self._read = min(saved, end) if saved is not None else end
        self._replay_to = end
        self._task = asyncio.create_task(self._run(), name="bridge:sweep")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_all([self._task])
            self._task = None
        with contextlib.suppress(Exception):
            await self._save()

    def position(self, kind: str) -> str | None:
        """The last write of ``kind`` up to which every write has an acknowledged event."""
        return self._positions.get(kind)

    async def _load(self) -> int | None:
        assert self._kv is not None
        try:
            entry = await self._kv.get(SWEPT)
        except KeyNotFoundError:
            return None
        try:
            return int(entry.value or b"")
        except ValueError:
            return None

    async def _save(self, *, now: bool = True) -> None:
        """Save the resume point (``now`` False: unless saved less than a checkpoint
        interval ago; a restart republishes at most that much, the stream drops it)."""
        assert self._kv is not None
        if self._saved == self._swept:
            return
        if not now and time.monotonic() - self._saved_at < CHECKPOINT_INTERVAL:
            return
        await self._kv.put(SWEPT, str(self._swept).encode())
        self._saved, self._saved_at = self._swept, time.monotonic()

    async def _run(self) -> None:
        pause = self.interval
        while True:
            try:
                busy = await self.sweep()
            except Exception as e:
                raise_if_cancelling()
                log.warning("bridge sweep failed: %r; looking again", e)
                busy = True
            pause = self.interval if busy else min(pause * 2, max(IDLE_INTERVAL, self.interval))
            await asyncio.sleep(pause)

    async def sweep(self) -> bool:
        """One look: the announces since the last, the events of the writes read at least
        the grace ago that have none, then the writes since (judged once as old). Returns
        whether anything was written since the last look, or is left to judge or send."""
        try:
            await self._read_announces()
        except NotFoundError:  # no event stream: publishing below fails and is retried
            log.warning("bridge sweep: the event stream %s is missing", self.bus.stream)
        if not await self._publish_missing():
            return True
        await self._save(now=False)
        end = await self._bucket_end()
        if end < self._read:  # a new, empty store: start over at its beginning
            log.warning("bridge sweep: the store's bucket is behind the resume point "
                        "(%d < %d): starting over", end, self._read)
            self._swept = self._read = self._replay_to = 0
        if end == self._read:
            return bool(self._unjudged)
        now = time.monotonic()
        for msg in await read_stream(self.nc, self._js, self.store.stream, self._read,
                                     limit=WRITES_PER_LOOK):
            headers = msg.headers or {}
            self._read = int(headers["Nats-Sequence"])
            kind = self._kinds.get(headers["Nats-Subject"][self._subject_at:].split(".")[0])
            if kind is not None:
                self._unjudged.append(_Write(self._read, kind, headers, msg.data, now))
        return True

    async def _read_announces(self) -> None:
        end = await self._events_end()
        if end < self._events_read:  # the stream was made again
            self._events_read = 0
        if end == self._events_read:
            return
        for msg in await read_stream(self.nc, self._js, self.bus.stream, self._events_read,
                                     limit=2 * WRITES_PER_LOOK):
            headers = msg.headers or {}
            self._events_read = int(headers["Nats-Sequence"])
            kind, _, rest = headers.get("Nats-Msg-Id", "").partition(":")
            rev = rest.rsplit(":", 2)[-2] if rest.count(":") >= 2 else ""
            if rev.isdigit() and int(rev) > self._swept:
                self._announced.add((kind, int(rev)))

    async def _publish_missing(self) -> bool:
        """Publish the events the writes read at least the grace ago lack; True once all
        are acked."""
        ripe_before = time.monotonic() - self.grace
        ripe = next((i for i, w in enumerate(self._unjudged) if w.read_at > ripe_before),
                    len(self._unjudged))
        if ripe == 0:
            return True
        judged = self._unjudged[:ripe]
        sends: list[tuple[_Write, asyncio.Future[bool]]] = []
        for w in judged:
            if w.seq > self._replay_to and (w.kind.KIND, w.seq) in self._announced:
                continue
            ev = stored_event(w.kind, w.headers, w.data, w.seq)
            if ev is not None:
                sent = await self.bus.send(event_for(ev.type, ev.object))
                sent.add_done_callback(ignore_outcome)  # those after a failure are not awaited
                sends.append((w, sent))
        for w, sent in sends:
            if w.seq > self._replay_to:
                metrics.BRIDGE_UNANNOUNCED.labels(w.kind.KIND).inc()
            try:
                await sent
            except (Exception, asyncio.CancelledError) as e:
                raise_if_cancelling()
                self.resends += 1
                metrics.BRIDGE_RESENDS.labels(w.kind.KIND).inc()
                log.warning("bridge sweep: the event of %s %d was not acknowledged (%r); "
                            "sending again", w.kind.KIND, w.seq, e)
                return False
            self.published += 1
        for w in judged:
            self._positions[w.kind.KIND] = str(w.seq)
        self._swept = self._read if ripe == len(self._unjudged) else judged[-1].seq
        del self._unjudged[:ripe]
        self._announced = {a for a in self._announced if a[1] > self._swept}
        return True
