"""The agent loop: fetch details, cordon if asked, apply unfinished items in order, report.

Items run strictly in order and the loop stops at the first failure; a failed item is
retried with backoff (the node may be fixed meanwhile) and reported with its message.
Finished items are recognised by hash in the on-node journal, so a restarted agent
resumes at the first unfinished item. Heartbeats go out on their own task.

Progress is reported at most once per progress interval (the endpoint's
``CCLOUD_LCM_PROGRESS_INTERVAL``, 1 s by default) while a pass runs: an item shows Running
once it has run that long, finished items ride on the next report, and the end of a pass
or a failure is reported at once; the node's facts (hostname, address) ride on the first
of these. Every report is a store write that wakes the LCMMachine and Cluster
controllers; an item that takes milliseconds would otherwise cost two of them for a state
nobody could see (the kubelet batches node status the same way).

A pass that leaves nothing to do (all done, or only a retry to wait for) is followed by a
long-poll of the details (``max(poll_interval, LONG_POLL)``, never past the next retry), so
an idle agent costs the endpoint one request per wait yet sees a new item or a cordon
request at once; otherwise (a failed cordon) the loop sleeps ``poll_interval`` and fetches
again. A machine the endpoint does not know yet (its node booted before LCM made its
LCMMachine) is asked for with a held fetch, answered once it is made - the first fetch and
the one after an unknown answer are held ones; a held fetch that ends still unknown (the
wait ran out, or an endpoint that does not hold) sleeps ``poll_interval``.
An unreachable or overloaded endpoint is retried with jittered exponential backoff, reset
by the first call that succeeds. A failed cordon/drain or uncordon is reported as
``cordonError`` (no item runs meanwhile) and cleared once it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from services.lcm.agent.client import AgentClient, EndpointError, Unauthorized
from services.lcm.agent.executor import Executor, ItemFailed
from services.lcm.agent.journal import Journal
from services.lcm.clock import stamp
from services.lcm.wire import MAX_WAIT, AgentReport, DetailItem, MachineDetails
from shared.models import StateItemStatus

log = logging.getLogger(__name__)

CORDON_FILE = "var/lib/ccloud/lcm-agent/cordoned"
MAX_BACKOFF = 30.0
# An idle agent's details GET is held at least this long. Each held poll that runs out costs
# the endpoint a store read, so a region's idle cost is (agents / LONG_POLL) reads per
# second; a change answers a held poll at once, so a longer hold costs no reaction time.
# Below the 60 s idle timeout common to HTTP proxies and load balancers.
LONG_POLL = 55.0
MIN_POLL = 1.0  # a retry due sooner than this is slept for, not polled for
PROGRESS_INTERVAL = 1.0  # least time between two progress reports within a pass

T = TypeVar("T")


class Agent:
    def __init__(
        self,
        client: AgentClient,
        executor: Executor,
        root: Path,
        *,
        poll_interval: float | None = None,
        progress_interval: float | None = None,
        sync_journal: bool = True,
    ) -> None:
        self.client = client
        self.executor = executor
        self.root = root
        self.journal = Journal(root, sync=sync_journal)
        self.poll_override = poll_interval
        self.poll_interval = poll_interval or 5.0
        self.heartbeat_interval = 10.0
        self.progress_override = progress_interval  # None: the endpoint's
        self.progress_interval = PROGRESS_INTERVAL if progress_interval is None else \
            progress_interval
        self._reported_at = -math.inf  # monotonic time of the last report sent
        self.status: dict[str, StateItemStatus] = {}
        self._retry_at: dict[str, float] = {}
        self._sent: bytes = b""
        self._started = False  # a first pass has begun
        self._cordon_path = root / CORDON_FILE
        self.cordoned = self._cordon_path.exists()
        self.cordon_error = ""  # the last failed cordon/drain or uncordon, until one succeeds
        # After a pass: None while work is left, else when the next retry is due (monotonic;
        # inf: nothing at all to do).
        self.idle_until: float | None = None
        self.unreachable = 0  # endpoint calls failed in a row (sets the retry backoff)
        self._connected = asyncio.Event()  # set by the first details fetched
        self.unknown = 0  # fetches in a row that found the machine unknown

    # --- reporting -------------------------------------------------------------------------

    def _view(self, details: MachineDetails) -> dict[str, StateItemStatus]:
        out: dict[str, StateItemStatus] = {}
        for di in details.items:
            name = di.item.name
            cur = self.status.get(name)
            if self.journal.finished(name, di.hash):
                if cur is None or cur.hash != di.hash or cur.state != "Done":
                    cur = StateItemStatus(hash=di.hash, state="Done", finished_at=stamp(),
                                          attempts=cur.attempts if cur else 0)
            elif cur is None or cur.hash != di.hash:
                cur = StateItemStatus(hash=di.hash, state="Pending")
            out[name] = cur
        self.status = out
        return out

    async def _report(self, details: MachineDetails) -> None:
        hostname, ip = self.executor.facts()
        report = AgentReport(
            hostname=hostname, ip=ip, items=self._view(details), cordoned=self.cordoned,
            cordon_error=self.cordon_error,
        )
        body = msgspec.json.encode(report)
        if body == self._sent:
            return
        await self.client.report(report)
        self._sent = body
        self._reported_at = time.monotonic()

    def _progress_due(self) -> float:
        """Seconds until progress may be reported again (0: now)."""
        return max(self._reported_at + self.progress_interval - time.monotonic(), 0.0)

    async def _apply(self, details: MachineDetails, di: DetailItem) -> None:
        """Apply one item; if it runs past the progress interval, report it Running."""
        task = asyncio.ensure_future(
            self.executor.apply(di.item, di.hash, secrets=details.secrets))
        try:
            done, _ = await asyncio.wait({task}, timeout=self._progress_due())
            if not done:
                await self._report(details)
            await task
        finally:
            if not task.done():
                task.cancel()  # the pass was stopped: the item runs again later

    # --- the loop --------------------------------------------------------------------------

    async def step(self, details: MachineDetails | None = None) -> MachineDetails | None:
        """One pass (on ``details`` if given, else fetched); returns the details it worked
        from (None if the machine is unknown) and sets ``idle_until``."""
        self.idle_until = None
        if details is None:
            # The first fetch, or unknown at the last: held while the machine is unknown,
            # until LCM makes its LCMMachine (a known one answers at once: no ETag sent).
            held = self.unknown or not self._started
            details = await self.client.details(wait=self._long_poll() if held else 0.0)
        if details is None:
            self.unknown += 1
            return None
        self.unknown = 0
        self.poll_interval = self.poll_override or details.poll_interval
        self.heartbeat_interval = details.heartbeat_interval
        if self.progress_override is None:
            self.progress_interval = details.progress_interval
        self._connected.set()
        self._view(details)
        if not self._started:
            # The node's facts ride on the first progress report (within the interval) or
            # on the first pass's outcome: one store write fewer per node than a report of
            # its own, and every report wakes two controllers.
            self._started = True
            self._reported_at = time.monotonic()
        if details.cordoned != self.cordoned:
            try:
                await self.executor.cordon(details.cordoned)
            except ItemFailed as e:
                # Reported, so the rollout stops on it; retried on the next pass.
                what = "cordon and drain" if details.cordoned else "uncordon"
                self.cordon_error = f"{what} failed: {e}"
                log.warning("%s", self.cordon_error)
                await self._report(details)
                return details
            self.cordoned, self.cordon_error = details.cordoned, ""
            self._cordon_path.parent.mkdir(parents=True, exist_ok=True)
            if self.cordoned:
                self._cordon_path.touch()
            else:
                self._cordon_path.unlink(missing_ok=True)
            await self._report(details)
        elif self.cordon_error:  # no longer asked for what failed
            self.cordon_error = ""
            await self._report(details)
        for di in details.items:
            name = di.item.name
            if self.journal.finished(name, di.hash):
                continue
            cur = self.status[name]
            if cur.state == "Failed" and time.monotonic() < self._retry_at.get(name, 0.0):
                self.idle_until = self._retry_at[name]
                break
            # A retry keeps the last failure's message until the item succeeds.
            self.status[name] = StateItemStatus(
                hash=di.hash, state="Running", attempts=cur.attempts + 1,
                message=cur.message if cur.state == "Failed" else "",
            )
            try:
                await self._apply(details, di)
            except ItemFailed as e:
                attempts = self.status[name].attempts
                self.status[name] = StateItemStatus(
                    hash=di.hash, state="Failed", message=str(e), attempts=attempts
                )
                self._retry_at[name] = time.monotonic() + self._backoff(attempts)
                log.warning("item %s failed (attempt %d): %s", name, attempts, e)
                await self._report(details)
                self.idle_until = self._retry_at[name]
                break
            self.journal.mark(name, di.hash)
            self.status[name] = StateItemStatus(
                hash=di.hash, state="Done", attempts=self.status[name].attempts,
                finished_at=stamp(),
            )
            log.info("item %s %s done", name, di.item.version)
            if not self._progress_due():
                await self._report(details)
        else:
            self.idle_until = math.inf
        await self._report(details)  # the pass's outcome (no call if nothing changed)
        return details

    def _backoff(self, failures: int) -> float:
        """The poll interval doubled per failure in a row, capped at ``MAX_BACKOFF`` and at
        8 intervals: how long a failed item or a failed endpoint call waits."""
        return min(self.poll_interval * 2 ** (failures - 1), MAX_BACKOFF, self.poll_interval * 8)

    def unreachable_delay(self) -> float:
        """Wait before calling an endpoint that just failed: the item backoff, jittered, so a
        region's agents do not come back in step after an endpoint restart or overload and
        knock it over again."""
        self.unreachable += 1
        return self._backoff(self.unreachable) * random.uniform(0.5, 1.0)

    def _long_poll(self) -> float:
        return min(max(self.poll_interval, LONG_POLL), MAX_WAIT)

    def poll_wait(self) -> float | None:
        """How long to long-poll after the last pass; None: sleep and fetch instead."""
        if self.idle_until is None:
            return None
        return min(self._long_poll(), self.idle_until - time.monotonic())

    def heartbeat_delay(self, failures: int) -> float:
        """The wait before the next beat: the interval, jittered so a region's agents started
        together do not beat in step; after failures in a row, doubling (up to 8 intervals),
        so an overloaded endpoint is not kept down by the beats it cannot answer."""
        if not failures:
            return self.heartbeat_interval * random.uniform(0.8, 1.2)
        return self.heartbeat_interval * min(2 ** failures, 8) * random.uniform(0.5, 1.0)

    def beat_redundant(self) -> bool:
        """Another call reached the endpoint within half an interval (an idle agent's
        long-poll renewal, a report): it was a sign of life, so a beat now adds only load.
        Signs of life stay at most ~1.7 intervals apart, well inside the timeout."""
        return time.monotonic() - self.client.answered_at < self.heartbeat_interval / 2

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        """Beats start with the first details (they carry the interval): before that the
        machine has nothing to be alive for, and the loop's own calls are retrying."""
        await self._until_stopped(stop, self._connected.wait())
        failures = 0
        while not stop.is_set():
            await self._pause(stop, self.heartbeat_delay(failures))
            if stop.is_set():
                return
            if not failures and self.beat_redundant():
                continue
            try:
                await self.client.heartbeat()
                failures = 0
            except Unauthorized:
                raise
            except EndpointError as e:
                failures += 1
                log.warning("heartbeat failed: %s", e)

    @staticmethod
    async def _until_stopped(
        stop: asyncio.Event, coro: Coroutine[Any, Any, T]
    ) -> tuple[bool, T | None]:
        """Run ``coro`` unless ``stop`` comes first: (False, None) after cancelling it."""
        task = asyncio.create_task(coro)
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not task.done():
            task.cancel()  # stopping: an interrupted item simply runs again later
            with contextlib.suppress(asyncio.CancelledError, EndpointError):
                await task
            return False, None
        return True, task.result()

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(seconds, 0.0))

    async def run(self, stop: asyncio.Event) -> None:
        beats = asyncio.create_task(self._heartbeats(stop))
        details: MachineDetails | None = None
        try:
            while not stop.is_set():
                if beats.done():
                    beats.result()
                try:
                    going, _ = await self._until_stopped(stop, self.step(details))
                except EndpointError as e:
                    if isinstance(e, Unauthorized):
                        raise
                    log.warning("endpoint: %s", e)
                    self.idle_until, details = None, None
                    await self._pause(stop, self.unreachable_delay())
                    continue
                if not going:
                    return
                self.unreachable = 0
                details = None
                if self.unknown == 1:
                    continue  # the next fetch is held until the machine is known
                wait = self.poll_wait()
                if wait is None or wait < MIN_POLL:
                    await self._pause(stop, self.poll_interval if wait is None else wait)
                    continue
                try:
                    going, details = await self._until_stopped(
                        stop, self.client.details(wait=wait)
                    )
                except EndpointError as e:
                    if isinstance(e, Unauthorized):
                        raise
                    log.warning("endpoint: %s", e)
                    await self._pause(stop, self.unreachable_delay())
                    continue
                if not going:
                    return
                self.unreachable = 0
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError, Unauthorized):
                await beats
