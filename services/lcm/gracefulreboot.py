"""GracefulRebootRequest controller: reboot a cluster's machines one by one, each drained first.

Mirantis Container Cloud's GracefulRebootRequest: named after its cluster, it lists the
machines to reboot (empty: all the cluster has when LCM first sees it). They go in the
order of an upgrade (``services.lcm.rollout.plan``: control-plane nodes one at a time and
first, then workers by update group, ``concurrentUpdates`` at a time), each through

  Waiting -> Draining     cordon the LCMMachine and mark it as this request's (one write);
                          the agent drains the node and acknowledges
          -> Rebooting    a fresh id in the Machine's ``reboot-request`` annotation, and in
                          ``reboot-graceful``: its provider has the node's OS shut down
                          (forced only past its shutdown timeout) and powers it on again
                          (``services.providers.reboot``, as for a MachineHealthCheck)
                          and answers in ``reboot-done``
          -> Uncordoning  uncordon; only an agent that is back acknowledges it, so Done
                          means the node runs again
          -> Done         unmark, once acknowledged

Each step is recorded in the request's ``status.targets`` before the write it leads to, so
a restart in between redoes the same write (same id) instead of a second reboot. A machine
starts only while it is Ready and not in maintenance, and nothing starts while the cluster
upgrades (or a node other than its own is cordoned, not for maintenance) or is paused: the
request waits and says why. The decision to start a machine and its cordon are made under
the cluster's lock the rollout holds for its own (``services.lcm.disruption``), so an
upgrade step and a reboot never take two nodes out at once. The cluster's rollout leaves
a marked node to this controller (no upgrade step, no uncordon), so neither undoes the
other.
A reboot the provider does not answer within ``ANSWER_TIMEOUT`` fails the request (no
further machine starts; ``Ready`` False ``RebootFailed``): delete it and make another once
the provider is fixed. Deleting the request lets go of the machines it holds: a request not
yet powered off is withdrawn, marks are removed and nodes uncordoned (unless in maintenance).

As MCC's, the request is deleted once every machine is rebooted; its progress and outcome
stay in ``GracefulReboot`` conditions on the Cluster (its Ready as it goes; Completed,
RebootFailed, or Cancelled when deleted before the end) and on each Machine (its step while
in flight, then Rebooted with the time, or RebootFailed).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from services.lcm.clock import stamp
from services.lcm.disruption import Disruptions
from services.lcm.health import ANSWER_TIMEOUT, epoch
from services.lcm.healthcheck import upgrading
from services.lcm.index import ClusterIndex
from services.lcm.objects import Mark, holds, mark, patch
from services.lcm.rebootrequest import ask, withdraw
from services.lcm.rollout import Group, MachineView, State, plan
from shared.bus import ChangeEvent
from shared.models import (
    CLUSTER_LABEL,
    GRACEFUL_REBOOT_ANNOTATION,
    REBOOT_DONE_ANNOTATION,
    REBOOT_OFF_ANNOTATION,
    Cluster,
    GracefulRebootRequest,
    LCMMachine,
    Machine,
    RebootTarget,
    UpdateGroup,
    copy,
)
from shared.runtime import Request, Result, ensure_finalizer, remove_finalizer, status_writer
from shared.runtime import conditions as cond
from shared.runtime.paused import is_paused
from shared.store import NotFound, Store

log = logging.getLogger(__name__)

FINALIZER = "lcm.kaas.containercloud.dev/gracefulrebootrequest"
GRACEFUL_REBOOT = "GracefulReboot"  # the condition on the Cluster and its Machines
REBOOT_FAILED = "RebootFailed"
FINISHED = ("Done", "Skipped")
# How each state looks to the rollout's planner (Failed: in flight, failing: stops it).
AS_ROLLOUT: dict[str, State] = {
    "Waiting": "waiting", "Draining": "draining", "Rebooting": "upgrading",
    "Uncordoning": "uncordoning", "Failed": "draining",
}


@dataclass
class Writes:
    """What a pass does once the request's status is written, in this order."""

    cordon: list[LCMMachine] = field(default_factory=list)
    reboot: list[tuple[Machine, str]] = field(default_factory=list)
    withdraw: list[tuple[Machine, str]] = field(default_factory=list)
    uncordon: list[LCMMachine] = field(default_factory=list)  # marked still
    unmark: list[LCMMachine] = field(default_factory=list)  # once the agent has uncordoned
    recheck: float | None = None
    # As this pass read them (the store's cache; not to be changed): for the conditions.
    seen: dict[str, Cluster | Machine] = field(default_factory=dict)

    def soonest(self, seconds: float) -> None:
        if self.recheck is None or seconds < self.recheck:
            self.recheck = seconds


class GracefulRebootReconciler:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 answer_timeout: float = ANSWER_TIMEOUT,
                 disruptions: Disruptions | None = None) -> None:
        self.store = store
        self.disruptions = disruptions or Disruptions()  # shared with the cluster's rollout
        self.clock = clock
        self.answer_timeout = answer_timeout
        self.index = ClusterIndex()  # the request of each cluster (named after it)

    def request_of(self, ev: ChangeEvent) -> list[Request]:
        """The request of the cluster a Cluster, Machine or LCMMachine event concerns."""
        cluster = ev.name if ev.kind == "Cluster" else ev.labels.get(CLUSTER_LABEL)
        return self.index.requests(ev.namespace, cluster) if cluster else []

    async def reconcile(self, req: Request) -> Result | None:
        try:
            grr = await self.store.get(GracefulRebootRequest, req.name, req.namespace)
        except NotFound:
            self.index.forget(req.namespace, req.name)
            raise
        if grr.deleting:
            self.index.forget(req.namespace, req.name)
            await self._let_go(grr)
            return None
        self.index.follow(req.namespace, req.name, req.name)
        grr = await ensure_finalizer(self.store, grr, FINALIZER)
        async with self.disruptions.deciding(req.namespace, req.name):
            async with status_writer(self.store, grr) as obj:
                writes = await self._pass(obj, self.clock())
            await self._act(obj, writes)
        await self._report(obj, writes.seen)
        if obj.status.phase == "Completed":
            # As MCC's: a request is gone once done; the conditions keep the record.
            log.info("graceful reboot %s/%s completed", req.namespace, req.name)
            with contextlib.suppress(NotFound):
                await self.store.delete(GracefulRebootRequest, req.name, req.namespace)
            return None
        return Result(requeue_after=writes.recheck) if writes.recheck is not None else None

    # --- one pass ---------------------------------------------------------------------------

    async def _pass(self, grr: GracefulRebootRequest, now: float) -> Writes:
        st, ns, name = grr.status, grr.metadata.namespace, grr.metadata.name
        st.observed_generation = grr.metadata.generation
        writes = Writes()
        try:
            cluster = await self.store.get(Cluster, name, ns)
        except NotFound:
            st.phase = "Pending"
            cond.mark_false(st, cond.READY, "ClusterNotFound", f"cluster {name!r} not found "
                            "(a GracefulRebootRequest is named after its cluster)", "Warning")
            return writes
        machines = {m.metadata.name: m for m in await self.store.list_all(
            Machine, ns, shared=True, where=lambda m: m.spec.cluster == name and not m.deleting)}
        writes.seen = {"": cluster, **machines}
        lms = {lm.spec.machine: lm for lm in await self.store.list_all(
            LCMMachine, ns, label_selector=f"{CLUSTER_LABEL}={name}", shared=True)
            if (m := machines.get(lm.spec.machine)) is not None
            and m.metadata.uid == lm.spec.machine_uid}
        groups = {g.metadata.name: Group(g.metadata.name, g.spec.index, g.spec.concurrent_updates)
                  for g in await self.store.list_all(
                      UpdateGroup, ns, where=lambda g: g.spec.cluster == name)}
        targets = self._targets(grr, machines)
        targets = [self._advance(grr, t, machines.get(t.machine), lms.get(t.machine), now, writes)
                   for t in targets]
        waiting = self._start(grr, cluster, targets, machines, lms, groups, now, writes)
        st.targets = targets
        self._summarize(grr, waiting)
        return writes

    @staticmethod
    def _targets(grr: GracefulRebootRequest, machines: dict[str, Machine]) -> list[RebootTarget]:
        """The recorded targets, with machines newly listed in spec added (Waiting) and
        unstarted ones no longer listed dropped; on the first pass, all of them."""
        listed = grr.spec.machines
        have = {t.machine: t for t in grr.status.targets}
        if not grr.status.targets and not listed:
            return [RebootTarget(machine=n) for n in sorted(machines)]
        out = [t for t in grr.status.targets
               if not listed or t.machine in listed or t.state != "Waiting"]
        out += [RebootTarget(machine=n) for n in listed if n not in have]
        return out

    def _advance(self, grr: GracefulRebootRequest, t: RebootTarget, m: Machine | None,
                 lm: LCMMachine | None, now: float, writes: Writes) -> RebootTarget:
        """One target's state from what its Machine and LCMMachine say now, with the
        (idempotent) write its state needs."""
        if t.state in (*FINISHED, "Failed"):
            return t
        if m is None or lm is None:
            if t.state == "Waiting" and m is not None:
                return t  # its LCMMachine is not made yet: waits like any other
            return msgspec.structs.replace(t, state="Skipped", finished_at=stamp(now),
                                           message="the machine was deleted")
        ours = lm.metadata.annotations.get(GRACEFUL_REBOOT_ANNOTATION) == grr.metadata.uid
        ann = m.metadata.annotations
        if t.state == "Draining":
            if not (ours and lm.spec.cordoned):
                writes.cordon.append(lm)
                return t
            if not lm.status.cordoned:
                return msgspec.structs.replace(t, message=lm.status.cordon_error)
            t = msgspec.structs.replace(t, state="Rebooting", request_id=uuid.uuid4().hex[:16],
                                        reboot_requested_at=stamp(now), message="")
            log.info("graceful reboot %s/%s: %s drained; reboot %s requested",
                     grr.metadata.namespace, grr.metadata.name, t.machine, t.request_id)
        if t.state == "Rebooting":
            if ann.get(REBOOT_DONE_ANNOTATION) != t.request_id:
                asked = epoch(t.reboot_requested_at) or now
                left = asked + self.answer_timeout - now
                if left <= 0 and ann.get(REBOOT_OFF_ANNOTATION) != t.request_id:
                    writes.withdraw.append((m, t.request_id))
                    return msgspec.structs.replace(
                        t, state="Failed", finished_at=stamp(now),
                        message=f"its provider did not answer reboot request "
                                f"{t.request_id} in {int(self.answer_timeout)}s")
                writes.reboot.append((m, t.request_id))
                writes.soonest(max(left, 1.0))
                return t
            t = msgspec.structs.replace(t, state="Uncordoning", message="")
        if t.state == "Uncordoning":
            # The mark stays until the agent has uncordoned the node, so the cluster's
            # rollout never takes the last step for an upgrade's; in maintenance the node
            # stays cordoned, for the maintenance.
            if ours and lm.spec.cordoned and not m.spec.maintenance:
                writes.uncordon.append(lm)
            elif ours and (m.spec.maintenance or not lm.status.cordoned):
                writes.unmark.append(lm)
            elif not ours:
                log.info("graceful reboot %s/%s: %s rebooted", grr.metadata.namespace,
                         grr.metadata.name, t.machine)
                return msgspec.structs.replace(t, state="Done", finished_at=stamp(now),
                                               message="")
        return t

    @staticmethod
    def _start(grr: GracefulRebootRequest, cluster: Cluster, targets: list[RebootTarget],
               machines: dict[str, Machine], lms: dict[str, LCMMachine],
               groups: dict[str, Group], now: float, writes: Writes) -> str:
        """Start the machines the upgrade order allows next; returns why none could ("" if
        started or nothing waits)."""
        views = [MachineView(name=t.machine, role=machines[t.machine].spec.role,
                             state=AS_ROLLOUT[t.state],
                             group=machines[t.machine].spec.update_group,
                             failure=t.message if t.state == "Failed" else "")
                 for t in targets if t.state in AS_ROLLOUT and t.machine in machines]
        if not any(v.state == "waiting" for v in views):
            return ""
        if is_paused(cluster):
            return f"cluster {cluster.metadata.name} is paused"
        if upgrading(cluster):
            return f"cluster {cluster.metadata.name} is upgrading: reboots go on after it"
        # Read from the nodes too: an upgrade's first cordon is written a moment before the
        # Cluster's status says it upgrades. (Nodes in maintenance are out on purpose.)
        out = sorted(n for n, lm in lms.items() if (lm.spec.cordoned or lm.status.cordoned)
                     and GRACEFUL_REBOOT_ANNOTATION not in lm.metadata.annotations
                     and not machines[n].spec.maintenance)
        if out:
            return f"{out[0]} is cordoned by an upgrade step"
        why = ""
        for name in plan(views, groups).start:
            m, lm = machines[name], lms.get(name)
            if reason := _not_startable(m, lm):
                why = why or f"{name} {reason}"
                continue
            i = next(i for i, t in enumerate(targets) if t.machine == name)
            targets[i] = msgspec.structs.replace(targets[i], state="Draining",
                                                 started_at=stamp(now), message="")
            assert lm is not None
            writes.cordon.append(lm)
            log.info("graceful reboot %s/%s: cordon and drain %s", grr.metadata.namespace,
                     grr.metadata.name, name)
        return why

    @staticmethod
    def _summarize(grr: GracefulRebootRequest, waiting: str) -> None:
        st = grr.status
        st.total = len(st.targets)
        st.rebooted = sum(1 for t in st.targets if t.state in FINISHED)
        failed = [t for t in st.targets if t.state == "Failed"]
        busy = [t for t in st.targets if t.state not in (*FINISHED, "Failed", "Waiting")]
        done = f"{st.rebooted} of {st.total} machines rebooted"
        if failed:
            st.phase = "Failed"
            cond.mark_false(st, cond.READY, REBOOT_FAILED,
                            f"{failed[0].machine}: {failed[0].message}; {done}", "Error")
        elif st.rebooted == st.total:
            st.phase = "Completed"
            cond.mark_true(st, cond.READY, "Completed", done)
        else:
            st.phase = "InProgress" if busy or st.rebooted else "Pending"
            moving = "; ".join(f"{t.machine} {t.state.lower()}"
                               + (f" ({t.message})" if t.message else "") for t in busy)
            cond.mark_false(st, cond.READY, "Waiting" if waiting and not busy else "InProgress",
                            "; ".join(filter(None, [moving, waiting and f"waits: {waiting}",
                                                    done])), "Info")

    # --- writes after the request's status --------------------------------------------------

    async def _act(self, grr: GracefulRebootRequest, writes: Writes) -> None:
        uid = grr.metadata.uid or ""
        lm: LCMMachine
        machine: Machine
        for lm in writes.cordon:
            def claim(obj: LCMMachine) -> bool:
                if obj.metadata.annotations.get(GRACEFUL_REBOOT_ANNOTATION) == uid \
                        and obj.spec.cordoned:
                    return False
                obj.metadata.annotations[GRACEFUL_REBOOT_ANNOTATION] = uid
                obj.spec.cordoned = True
                return True

            await patch(self.store, copy(lm), claim)
        for machine, request in writes.reboot:
            await patch(self.store, copy(machine), ask(request, graceful=True))
        for machine, request in writes.withdraw:
            await patch(self.store, copy(machine), withdraw(request))
        for lm in writes.uncordon:
            def uncordon(obj: LCMMachine) -> bool:
                if obj.metadata.annotations.get(GRACEFUL_REBOOT_ANNOTATION) != uid \
                        or not obj.spec.cordoned:
                    return False
                obj.spec.cordoned = False
                return True

            await patch(self.store, copy(lm), uncordon)
        for lm in writes.unmark:
            await patch(self.store, copy(lm), _unmark(uid, uncordon=False))

    async def _report(self, grr: GracefulRebootRequest, seen: dict[str, Cluster | Machine], *,
                      cancelled: bool = False) -> None:
        """The ``GracefulReboot`` conditions on the Cluster and the Machines (as MCC shows
        a reboot's progress): they outlive the request, which is deleted once done. ``seen``:
        the objects as the pass read them ("": the Cluster), compared before any read."""
        ns, st = grr.metadata.namespace, grr.status
        ready = cond.get(st, cond.READY)
        want: Mark
        if cancelled:
            want = ("False", "Cancelled", f"the request was deleted with {st.rebooted} of "
                                          f"{st.total} machines rebooted", "Info")
        elif ready is None:
            return
        else:
            want = (ready.status, ready.reason, ready.message,
                    ready.severity if ready.status != "True" else "")
        cached = seen.get("")
        if cached is None or not holds(cached, GRACEFUL_REBOOT, want):
            with contextlib.suppress(NotFound):
                cluster = await self.store.get(Cluster, grr.metadata.name, ns)
                await mark(self.store, cluster, GRACEFUL_REBOOT, want)
        for t in st.targets:
            if t.state in ("Waiting", "Skipped"):
                continue  # not started (a previous reboot's record stays), or gone
            mine = _machine_mark(grr, t, cancelled=cancelled)
            cached = seen.get(t.machine)
            if cached is not None and holds(cached, GRACEFUL_REBOOT, mine):
                continue
            try:
                machine = await self.store.get(Machine, t.machine, ns)
            except NotFound:
                continue
            await mark(self.store, machine, GRACEFUL_REBOOT, mine,
                       derive=cond.summarize_machine)

    async def _let_go(self, grr: GracefulRebootRequest) -> None:
        """A deleted request lets go of the machines it holds, then of itself."""
        if FINALIZER not in grr.metadata.finalizers:
            return
        ns, uid = grr.metadata.namespace, grr.metadata.uid or ""
        for t in grr.status.targets:
            if t.state in ("Waiting", *FINISHED):
                continue
            try:
                m = await self.store.get(Machine, t.machine, ns)
                lm = await self.store.get(LCMMachine, t.machine, ns)
            except NotFound:
                continue
            if t.request_id:
                await patch(self.store, m, withdraw(t.request_id))
            await patch(self.store, lm, _unmark(uid, uncordon=not m.spec.maintenance))
        if grr.status.phase != "Completed":
            await self._report(grr, {}, cancelled=True)
        await remove_finalizer(self.store, grr, FINALIZER)


def _not_startable(m: Machine, lm: LCMMachine | None) -> str:
    if m.spec.maintenance:
        return "is in maintenance"
    if lm is None or not lm.status.release:
        return "has not deployed yet"
    if lm.spec.cordoned or lm.status.cordoned:
        return "is cordoned"
    if not cond.is_true(m.status, cond.READY):
        return "is not Ready"
    return ""


def _unmark(uid: str, *, uncordon: bool) -> Callable[[LCMMachine], bool]:
    def unmark(lm: LCMMachine) -> bool:
        ann = lm.metadata.annotations
        changed = False
        if ann.get(GRACEFUL_REBOOT_ANNOTATION) == uid:
            del ann[GRACEFUL_REBOOT_ANNOTATION]
            changed = True
            if uncordon and lm.spec.cordoned:
                lm.spec.cordoned = False
        return changed
    return unmark


def _machine_mark(grr: GracefulRebootRequest, t: RebootTarget, *, cancelled: bool,
                  ) -> Mark | None:
    """A started machine's ``GracefulReboot``: False while in flight, True once rebooted,
    the error if it failed; None (removed) if in flight when the request was cancelled."""
    by = f"GracefulRebootRequest {grr.metadata.name}"
    if t.state == "Done":
        return ("True", "Rebooted", f"rebooted by {by} at {t.finished_at}", "")
    if t.state == "Failed":
        return ("False", REBOOT_FAILED, t.message, "Error")
    return None if cancelled else ("False", t.state, t.message or f"{t.state.lower()} for "
                                                                f"{by}", "Info")
