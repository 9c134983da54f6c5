"""LCMMachine controller: phase, conditions and release from agent reports; heartbeat health.

Agents write only their reports (``services.lcm.endpoint``); this controller turns them
into ``status.phase``, the ``ItemsReady``/``Heartbeat``/``Cordon``/``Ready`` conditions and
``status.release`` (set once every item of ``spec.release`` is finished). The endpoint
applies the same ``derive`` (a report being a sign of life) to the write that stores a
report, so the reconcile that write wakes has nothing left to write; calling a node
missing is this controller's alone.
It requeues itself to notice a heartbeat that stops, and mirrors phase and node name onto
the Machine, and - for a Machine in maintenance - how far its node's drain got
(``Maintenance``; the Machine controller writes the same when the Machine's spec moves).
A node's last sign of life is the later of ``status.heartbeat`` and its lease
(``services.lcm.leases``): between status writes only the lease moves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.lcm.clock import age
from services.lcm.leases import LeaseView
from services.lcm.phases import UNINITIALIZED, items_view, machine_phase
from shared.models import LCMMachine, Machine
from shared.models.meta import Severity
from shared.runtime import Request, Result, status_writer
from shared.runtime import conditions as cond
from shared.store import NotFound, Store

log = logging.getLogger(__name__)

ITEMS_READY = "ItemsReady"
HEARTBEAT = "Heartbeat"
CORDON = "Cordon"  # present only while the agent fails to cordon/drain or uncordon
LCM_READY = cond.LCM_READY  # on the Machine
MAINTENANCE = cond.MAINTENANCE  # on the Machine and the Cluster
DRAINED = "Drained"
DRAINING = "Draining"


class LCMMachineReconciler:
    def __init__(
        self, store: Store, *, heartbeat_timeout: float, leases: LeaseView | None = None
    ) -> None:
        self.store = store
        self.heartbeat_timeout = heartbeat_timeout
        self.leases = leases

    async def start(self) -> None:
        if self.leases is not None:
            await self.leases.start()

    async def stop(self) -> None:
        if self.leases is not None:
            await self.leases.stop()

    async def _last_seen(self, lm: LCMMachine) -> float | None:
        """Seconds since the node's last sign of life (None: never heard from).

        The watched lease answers while the node is alive; before calling it missing the
        lease is read from the bucket itself, as the watch may lag. A node that never
        reported has no lease either (its first sign of life is written to status)."""
        stored = age(lm.status.heartbeat)
        if self.leases is None or stored is None:
            return stored
        seen = _youngest(stored, age(self.leases.renewed(lm)))
        if seen is not None and seen > self.heartbeat_timeout:
            seen = _youngest(stored, age(await self.leases.latest(lm)))
        return seen

    async def reconcile(self, req: Request) -> Result | None:
        lm = await self.store.get(LCMMachine, req.name, req.namespace)
        if lm.deleting:
            return None
        requeue: float | None = None
        seen = await self._last_seen(lm)
        async with status_writer(self.store, lm):
            requeue = self._status(lm, seen)
        await self._mirror(lm)
        return Result(requeue_after=requeue)

    def _status(self, lm: LCMMachine, seen: float | None) -> float | None:
        requeue = derive(lm, seen, self.heartbeat_timeout)
        lm.status.observed_generation = lm.metadata.generation
        return requeue

    async def _mirror(self, lm: LCMMachine) -> None:
        try:
            machine = await self.store.get(Machine, lm.spec.machine, lm.metadata.namespace)
        except NotFound:
            return
        if machine.metadata.uid != lm.spec.machine_uid:
            return
        async with status_writer(self.store, machine, derive=cond.summarize_machine) as m:
            m.status.lcm_phase = lm.status.phase
            if lm.status.hostname:
                m.status.node_name = lm.status.hostname
            ready = cond.get(lm.status, cond.READY)
            if ready is not None and ready.status == "True":
                cond.mark_true(m.status, LCM_READY, "Ready")
            elif ready is not None:
                cond.mark_false(m.status, LCM_READY, ready.reason, ready.message, ready.severity)
            mark_maintenance(m, lm)


@dataclass(frozen=True)
class Drain:
    """How far the drain of a node in maintenance got."""

    done: bool
    reason: str
    message: str
    severity: Severity = "Info"


def drain_of(lm: LCMMachine | None) -> Drain:
    """The drain of a node LCM cordons for maintenance: done once its agent acked the
    cordon; a node with no agent to ask (none yet, or silent) has nothing LCM could drain,
    and is cordoned and drained as soon as its agent reports."""
    if lm is None:
        return Drain(True, "NoNode", "the machine has no node yet")
    hb = cond.get(lm.status, HEARTBEAT)
    if not lm.status.hostname or (hb is not None and hb.reason == "HeartbeatMissing"):
        return Drain(True, "AgentGone", "the node's agent is not reporting: its node is "
                                        "cordoned and drained when it reports again")
    if lm.spec.cordoned and lm.status.cordoned:
        return Drain(True, DRAINED, "the node is cordoned and drained; LCM applies nothing "
                                    "new to it")
    if lm.spec.cordoned and lm.status.cordon_error:
        return Drain(False, DRAINING, lm.status.cordon_error, "Error")
    return Drain(False, DRAINING, "waiting for the agent to cordon and drain the node")


def mark_maintenance(machine: Machine, lm: LCMMachine | None) -> None:
    """The Machine's ``Maintenance`` condition: present while ``spec.maintenance``, True
    once its node is drained (``lm``: its LCMMachine, None if it has none)."""
    st = machine.status
    if not machine.spec.maintenance:
        cond.remove(st, MAINTENANCE)
        return
    drain = drain_of(lm)
    if drain.done:
        cond.mark_true(st, MAINTENANCE, drain.reason, drain.message)
    else:
        cond.mark_false(st, MAINTENANCE, drain.reason, drain.message, drain.severity)


def _youngest(*ages: float | None) -> float | None:
    known = [a for a in ages if a is not None]
    return min(known) if known else None


def derive(lm: LCMMachine, seen: float | None, timeout: float) -> float | None:
    """Phase, release and the ItemsReady/Cordon/Heartbeat/Ready conditions of a node last
    heard from ``seen`` seconds ago (None: never); returns when to look again for its
    heartbeat to stop. The endpoint applies it with 0 to the very write that stores an
    agent's report, as ``derive`` does for a Machine's Ready: the reconcile that write
    wakes then finds nothing to change, instead of a second write per report."""
    _progress(lm)
    requeue = _liveness(lm, seen, timeout)
    st = lm.status
    cond.summarize(st, [HEARTBEAT, ITEMS_READY] + ([CORDON] if st.cordon_error else []))
    return requeue


def _progress(lm: LCMMachine) -> None:
    st = lm.status
    view = items_view(lm)
    st.phase = machine_phase(lm, view)
    if view.complete and st.hostname:
        st.release = lm.spec.release
    if view.failed is not None:
        item, message = view.failed
        cond.mark_false(st, ITEMS_READY, "ItemFailed", f"item {item}: {message}", "Error")
    elif view.complete:
        cond.mark_true(st, ITEMS_READY, "Done", f"{len(view.done)} items done")
    else:
        total = len(lm.spec.state_items)
        current = (view.running or view.pending or ["?"])[0]
        cond.mark_false(
            st, ITEMS_READY, "InProgress",
            f"{len(view.done)}/{total} items done, next {current}", "Info",
        )
    if st.cordon_error:
        reason = "DrainFailed" if lm.spec.cordoned else "UncordonFailed"
        cond.mark_false(st, CORDON, reason, st.cordon_error, "Error")
    else:
        cond.remove(st, CORDON)


def _liveness(lm: LCMMachine, seen: float | None, timeout: float) -> float | None:
    st = lm.status
    if st.phase == UNINITIALIZED or seen is None:
        cond.mark_false(st, HEARTBEAT, "AgentNotConnected", "no agent has reported", "Info")
        return None
    if seen > timeout:
        cond.mark_false(st, HEARTBEAT, "HeartbeatMissing",
                        f"no heartbeat for {seen:.0f}s (timeout {timeout:.0f}s)", "Error")
        return None
    cond.mark_true(st, HEARTBEAT, "AgentAlive")
    return max(timeout - seen, 0.0) + 0.2

