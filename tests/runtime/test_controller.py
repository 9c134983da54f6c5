"""Controller runtime against a real store and bus: level-triggered, retried, idempotent."""

from __future__ import annotations

import asyncio
import time

from shared.models import ObjectMeta, Region, RegionSpec
from shared.runtime import Controller, Request, Result, TransientError, Watch
from shared.store import AlreadyExists
from tests.harness import system
from tests.waiting import eventually


def region(name: str) -> Region:
    return Region(metadata=ObjectMeta(name=name), spec=RegionSpec(providers=["simulated"]))


class Recorder:
    """Reconciler that records calls and may fail a number of times first."""

    def __init__(self, fail_first: int = 0, requeue_after: float | None = None) -> None:
        self.calls: list[tuple[float, str]] = []
        self.fail_first = fail_first
        self.requeue_after = requeue_after
        self.active: set[str] = set()
        self.overlap = False

    async def reconcile(self, req: Request) -> Result:
        if req.name in self.active:
            self.overlap = True
        self.active.add(req.name)
        try:
            self.calls.append((time.monotonic(), req.name))
            await asyncio.sleep(0)
            if len(self.calls) <= self.fail_first:
                raise RuntimeError("boom")
            return Result(requeue_after=self.requeue_after)
        finally:
            self.active.discard(req.name)


async def test_resync_on_start_and_events_enqueue(nc, prefix):
    async with system(nc, prefix) as h:
        await h.store.create(region("pre-existing"))
        rec = Recorder()
        ctl = Controller(name="regions", kind=Region, reconciler=rec, store=h.store, bus=h.bus)
        await ctl.start()
        try:
            await eventually(lambda: ("pre-existing" in {n for _, n in rec.calls}),
                             what="resync of existing object")
            await h.store.create(region("later"))
            await eventually(lambda: "later" in {n for _, n in rec.calls}, what="event")
        finally:
            await ctl.stop()


async def test_errors_back_off_exponentially_then_succeed(nc, prefix):
    async with system(nc, prefix) as h:
        await h.store.create(region("flaky"))
        rec = Recorder(fail_first=4)
        ctl = Controller(name="flaky", kind=Region, reconciler=rec, store=h.store, bus=h.bus)
        ctl.queue.base_delay = 0.05
        await ctl.start()
        try:
            await eventually(lambda: len(rec.calls) >= 5, what="five attempts")
        finally:
            await ctl.stop()
        times = [t for t, _ in rec.calls[:5]]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        # Nominal delays 0.05, 0.1, 0.2, 0.4 with jitter in [0.5, 1]: each gap is at least
        # half its nominal value, and the last one clearly exceeds the first.
        for n, gap in enumerate(gaps):
            assert gap >= 0.05 * 2**n * 0.5 - 0.01
        assert gaps[-1] > gaps[0]
        assert ctl.queue.failures(Request("flaky")) == 0, "success resets the backoff"


async def test_transient_error_requeues_after_its_delay(nc, prefix):
    class NotYet:
        def __init__(self) -> None:
            self.calls: list[float] = []

        async def reconcile(self, req: Request) -> None:
            self.calls.append(time.monotonic())
            if len(self.calls) == 1:
                raise TransientError("dependency not ready", delay=0.3)

    async with system(nc, prefix) as h:
        await h.store.create(region("r"))
        rec = NotYet()
        ctl = Controller(name="nyet", kind=Region, reconciler=rec, store=h.store, bus=h.bus)
        await ctl.start()
        try:
            await eventually(lambda: len(rec.calls) >= 2, what="retry")
        finally:
            await ctl.stop()
        assert rec.calls[1] - rec.calls[0] >= 0.29


async def test_redelivered_events_cause_no_double_effects(nc, prefix):
    """A level-triggered reconcile that creates a child converges to exactly one child,
    however often its events are delivered."""

    class MakesChild:
        def __init__(self, store) -> None:
            self.store = store
            self.calls = 0

        async def reconcile(self, req: Request) -> None:
            self.calls += 1
            if req.name.endswith("-child"):
                return
            parent = await self.store.get(Region, req.name)
            try:
                await self.store.create(
                    Region(metadata=ObjectMeta(name=f"{req.name}-child",
                                               owner_references=[parent.owner_ref()]))
                )
            except AlreadyExists:
                pass

    async with system(nc, prefix) as h:
        rec = MakesChild(h.store)
        ctl = Controller(name="parent", kind=Region, reconciler=rec, store=h.store, bus=h.bus)
        await ctl.start()
        try:
            p = await h.store.create(region("p"))
            # Re-announce the same write several times, as JetStream redelivery would.
            for _ in range(5):
                await h.bus.announce("ADDED", p)
            from shared.bus import event_for

            for i in range(3):  # and a few distinct events for the same object
                ev = event_for("MODIFIED", p, trace_id=f"t{i}")
                await h.bus.publish(ev.__class__(**{**_fields(ev), "id": f"dup-{i}"}))
            await eventually(lambda: rec.calls >= 2, what="reconciles")
            await eventually(
                lambda: _names(h), what="child exists"
            )
            names = [r.metadata.name for r in await h.store.list_all(Region)]
            assert sorted(names) == ["p", "p-child"]
        finally:
            await ctl.stop()


def _fields(ev):
    return {f: getattr(ev, f) for f in ev.__struct_fields__}


async def _names(h):
    return "p-child" in {r.metadata.name for r in await h.store.list_all(Region)}


async def test_a_batching_watch_gathers_a_burst_into_one_reconcile(nc, prefix):
    """Child events within a watch's delay reach the parent as one reconcile."""
    async with system(nc, prefix) as h:
        await h.store.create(region("parent"))
        rec = Recorder()
        ctl = Controller(
            name="regions", kind=Region, reconciler=rec, store=h.store, bus=h.bus,
            watches=[Watch(Region, lambda ev: [Request("parent", None)]
                           if ev.name != "parent" else [], delay=1.0)],
        )
        await ctl.start()
        try:
            await eventually(lambda: len(rec.calls) == 1, what="resync of the parent")
            first = time.monotonic()
            # A burst of child writes (unbatched, each would reconcile the parent).
            await asyncio.gather(*(h.store.create(region(f"child-{i}")) for i in range(5)))
            await eventually(lambda: any(n == "parent" for t, n in rec.calls if t > first),
                             timeout=10, what="the parent reconciled after the burst")
            calls_then = sum(n == "parent" for _, n in rec.calls)
            # The children's own (primary) reconciles show every event has been handled;
            # the parent's batch has fired, so no further parent reconcile is pending.
            await eventually(lambda: {f"child-{i}" for i in range(5)}
                             <= {n for _, n in rec.calls}, what="children reconciled")
            assert calls_then == 2, rec.calls  # resync + one for the whole burst
            after = [t for t, n in rec.calls if n == "parent" and t > first]
            assert after[0] - first >= 1.0 - 0.05  # held for the window, not run at once
        finally:
            await ctl.stop()
