"""MachineHealthCheck controller: judge a cluster's machines, have the unhealthy ones rebooted.

Cluster API's MachineHealthCheck with Metal3's reboot remediation. Each pass judges the
covered machines (``services.lcm.health``); unless more are unhealthy than ``maxUnhealthy``
allows (then ``RemediationAllowed`` is False, ``TooManyUnhealthy``, and nothing is done: a
partition must not reboot the fleet), each unhealthy machine is asked to be power cycled by
its provider: an id in the Machine's ``reboot-request`` annotation, which the provider
answers in ``reboot-done`` (``services.providers.reboot``). A metadata write, so it never
races the provider's status writes.

With ``strategy: Replace`` (Cluster API's remediation) an unhealthy machine of a MachinePool
is deleted instead, once (its target is ``Replacing`` until it is gone), and the pool makes
a new one; a machine of no pool is given up on at once, as nothing would replace it.

The attempt is recorded in the check's ``status.targets`` *before* the annotation is
written, so a restart in between resends the same request rather than making a second one;
the next attempt comes no sooner than ``retryIntervalSeconds`` after the last, and only once
the provider has answered. After ``retryLimit`` reboots that did not help the check gives
up on the machine: ``HealthCheckSucceeded`` False, ``RemediationFailed`` on the Machine.
That condition is on a Machine only while the check has something to say about it
(remediating, or given up), and goes when the machine is healthy again with no reboot in
flight (its target entry with it): a machine that merely is not timed out again yet - its
node just rebooted, say - keeps its count of reboots.

No polling: Machine and Cluster events of the check's cluster wake it (a check per cluster
is found through an index kept by the reconciles), and a pass asks to be requeued when the
next timeout or retry interval runs out.
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
from services.lcm.cluster import UPGRADED
from services.lcm.health import Assessment, Verdict, assess, next_step
from services.lcm.index import ClusterIndex
from services.lcm.objects import mark, patch
from services.lcm.rebootrequest import ask, withdraw
from shared.bus import ChangeEvent
from shared.models import (
    CLUSTER_LABEL,
    POOL_LABEL,
    REBOOT_DONE_ANNOTATION,
    REBOOT_REQUEST_ANNOTATION,
    Cluster,
    HealthCheckTarget,
    LCMMachine,
    Machine,
    MachineHealthCheck,
    copy,
)
from shared.models.meta import Severity
from shared.runtime import (
    Request,
    Result,
    ensure_finalizer,
    remove_finalizer,
    status_writer,
)
from shared.runtime import conditions as cond
from shared.store import NotFound, Store

log = logging.getLogger(__name__)

FINALIZER = "lcm.kaas.containercloud.dev/machinehealthcheck"
HEALTH_CHECK = "HealthCheckSucceeded"  # on the Machine
REMEDIATION_FAILED = "RemediationFailed"
REMEDIATION_ALLOWED = "RemediationAllowed"
TOO_MANY = "TooManyUnhealthy"
NOT_REPLACEABLE = "NotReplaceable"  # Replace, for a machine of no pool
NOT_ANSWERED = "RebootNotAnswered"  # the provider never answered a request
SLACK = 0.05  # past a deadline when requeued, never a hair before it

Want = tuple[str, str, Severity] | None  # HealthCheckSucceeded False (reason, message, ...)


@dataclass
class Plan:
    """What a pass does once the check's status is written: annotations, then conditions."""

    requests: list[tuple[Machine, str]] = field(default_factory=list)
    deletes: list[Machine] = field(default_factory=list)  # Replace: for their pools to remake
    withdrawals: list[tuple[Machine, str]] = field(default_factory=list)  # unanswered requests
    marks: list[tuple[str, Want]] = field(default_factory=list)
    machines: dict[str, Machine] = field(default_factory=dict)
    recheck: float | None = None

    def soonest(self, seconds: float | None) -> None:
        if seconds is not None and (self.recheck is None or seconds < self.recheck):
            self.recheck = seconds


def _in_flight(t: HealthCheckTarget, m: Machine) -> bool:
    """The target's latest reboot request is on the Machine and not answered yet."""
    ann = m.metadata.annotations
    return (ann.get(REBOOT_REQUEST_ANNOTATION) == t.request_id
            and ann.get(REBOOT_DONE_ANNOTATION) != t.request_id)


def _refreshed(t: HealthCheckTarget, m: Machine) -> HealthCheckTarget:
    """The target's state as the Machine's annotations tell it (Failed stays Failed, and
    Replacing until the Machine is gone)."""
    if t.state in ("Failed", "Replacing"):
        return t
    done = m.metadata.annotations.get(REBOOT_DONE_ANNOTATION) == t.request_id
    return msgspec.structs.replace(t, state="Rebooted" if done else "Rebooting")


def upgrading(cluster: Cluster) -> bool:
    """An upgrade is under way (or stopped at a failure): nodes are drained on purpose."""
    if cluster.status.phase == "Upgrading":
        return True
    c = cond.get(cluster.status, UPGRADED)
    return c is not None and c.status == "False" and c.reason in ("Upgrading", "UpgradeFailed")


class HealthCheckReconciler:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.index = ClusterIndex()  # the checks of each cluster

    # --- which checks an event concerns -----------------------------------------------------

    def checks_of_machine(self, ev: ChangeEvent) -> list[Request]:
        cluster = ev.labels.get(CLUSTER_LABEL)
        return self.index.requests(ev.namespace, cluster) if cluster else []

    def checks_of_cluster(self, ev: ChangeEvent) -> list[Request]:
        return self.index.requests(ev.namespace, ev.name)

    # --- reconcile --------------------------------------------------------------------------

    async def reconcile(self, req: Request) -> Result | None:
        try:
            mhc = await self.store.get(MachineHealthCheck, req.name, req.namespace)
        except NotFound:
            self.index.forget(req.namespace, req.name)
            raise
        if mhc.deleting:
            self.index.forget(req.namespace, req.name)
            return await self._release(mhc)
        self.index.follow(req.namespace, req.name, mhc.spec.cluster)
        mhc = await ensure_finalizer(self.store, mhc, FINALIZER)
        now = self.clock()
        async with status_writer(self.store, mhc) as obj:
            plan = await self._pass(obj, now)
        await self._act(obj, plan)
        return Result(requeue_after=None if plan.recheck is None else plan.recheck + SLACK)

    async def _pass(self, mhc: MachineHealthCheck, now: float) -> Plan:
        st, spec, ns = mhc.status, mhc.spec, mhc.metadata.namespace
        st.observed_generation = mhc.metadata.generation
        try:
            cluster = await self.store.get(Cluster, spec.cluster, ns)
        except NotFound:
            st.expected_machines = st.current_healthy = st.remediations_allowed = 0
            cond.remove(st, REMEDIATION_ALLOWED)
            cond.mark_false(st, cond.READY, "ClusterNotFound",
                            f"cluster {spec.cluster!r} not found", "Warning")
            return Plan()
        machines = sorted(await self.store.list_all(
            Machine, ns, shared=True, where=lambda m: m.spec.cluster == spec.cluster
            and spec.selector.matches(m.metadata.labels)), key=lambda m: m.metadata.name)
        uids = {m.metadata.name: m.metadata.uid for m in machines}
        lms = {lm.spec.machine: lm for lm in await self.store.list_all(
            LCMMachine, ns, label_selector=f"{CLUSTER_LABEL}={spec.cluster}", shared=True)
            if uids.get(lm.spec.machine) == lm.spec.machine_uid}
        a = assess(machines, lms, spec, now=now, upgrading=upgrading(cluster))
        plan = Plan(machines={m.metadata.name: m for m in machines}, recheck=a.recheck)
        st.targets = self._remediate(mhc, machines, a, plan, now)
        self._summarize(mhc, a)
        return plan

    def _remediate(self, mhc: MachineHealthCheck, machines: list[Machine], a: Assessment,
                   plan: Plan, now: float) -> list[HealthCheckTarget]:
        """The check's targets after this pass; fills ``plan`` with the writes they need."""
        old = {t.machine: t for t in mhc.status.targets}
        targets: list[HealthCheckTarget] = []
        for m in machines:
            name = m.metadata.name
            v, t = a.verdicts[name], old.pop(name, None)
            if v.state == "healthy" and t is not None and not _in_flight(t, m):
                log.info("machine %s/%s recovered after %d reboots", m.metadata.namespace,
                         name, t.attempts)
                plan.marks.append((name, None))
                continue
            if v.state != "unhealthy" or a.short_circuited:
                # Held as it stands, neither cleared nor pursued: a reboot in flight, a
                # machine not timed out again yet (a reboot takes the node down for a while:
                # that starts no new count), one out of service on purpose.
                if t is not None:
                    targets.append(_refreshed(t, m))
                continue
            t = self._next(mhc, m, v, t, plan, now)
            targets.append(t)
            plan.marks.append((name, self._want(mhc, t)))
        for gone in old:  # deleted, or no longer selected
            plan.marks.append((gone, None))
        return targets

    def _next(self, mhc: MachineHealthCheck, m: Machine, v: Verdict,
              t: HealthCheckTarget | None, plan: Plan, now: float) -> HealthCheckTarget:
        if mhc.spec.remediation.strategy == "Replace":
            return self._replace(m, v, t, plan, now)
        step = next_step(t, m, mhc.spec.remediation, now=now)
        plan.soonest(step.recheck)
        name = m.metadata.name
        if step.action == "reboot":
            attempts = (t.attempts if t is not None else 0) + 1
            t = HealthCheckTarget(machine=name, state="Rebooting", attempts=attempts,
                                  last_attempt_time=stamp(now), request_id=uuid.uuid4().hex[:16])
            log.info("machine %s/%s unhealthy (%s): reboot %d of %d requested (%s)",
                     m.metadata.namespace, name, v.message, attempts,
                     mhc.spec.remediation.retry_limit, t.request_id)
        assert t is not None  # only a first step is a reboot with no record
        if step.action in ("reboot", "resend"):
            plan.requests.append((m, t.request_id))
        if step.action == "give_up":
            t = msgspec.structs.replace(t, state="Failed")
            log.warning("machine %s/%s: %d reboots did not bring it back; giving up",
                        m.metadata.namespace, name, t.attempts)
        if step.action == "unanswered":
            log.warning("machine %s/%s: its provider did not answer reboot request %s; "
                        "giving up", m.metadata.namespace, name, t.request_id)
            plan.withdrawals.append((m, t.request_id))  # no late power cycle, if it returns
            return msgspec.structs.replace(t, state="Failed", reason=NOT_ANSWERED,
                                           message=v.message)
        if t.reason == NOT_ANSWERED:  # Failed stays as it was given up
            return t
        return msgspec.structs.replace(_refreshed(t, m), reason=v.reason, message=v.message)

    @staticmethod
    def _replace(m: Machine, v: Verdict, t: HealthCheckTarget | None, plan: Plan,
                 now: float) -> HealthCheckTarget:
        """Delete a pool's machine (once: a Replacing target waits for it to be gone); a
        machine of no pool is given up on at once."""
        name = m.metadata.name
        if t is not None and t.state in ("Replacing", "Failed"):
            return msgspec.structs.replace(t, reason=v.reason, message=v.message)
        if POOL_LABEL not in m.metadata.labels:
            log.warning("machine %s/%s unhealthy (%s) and in no MachinePool: not replaced",
                        m.metadata.namespace, name, v.message)
            return HealthCheckTarget(machine=name, state="Failed", last_attempt_time=stamp(now),
                                     reason=NOT_REPLACEABLE, message=v.message)
        log.info("machine %s/%s unhealthy (%s): deleted for MachinePool %s to replace",
                 m.metadata.namespace, name, v.message, m.metadata.labels[POOL_LABEL])
        plan.deletes.append(m)
        return HealthCheckTarget(machine=name, state="Replacing", attempts=1,
                                 last_attempt_time=stamp(now), reason=v.reason,
                                 message=v.message)

    @staticmethod
    def _want(mhc: MachineHealthCheck, t: HealthCheckTarget) -> Want:
        check = f"MachineHealthCheck {mhc.metadata.name}"
        if t.reason == NOT_ANSWERED:
            return (REMEDIATION_FAILED, f"{t.message}; its provider did not answer reboot "
                                        f"request {t.request_id} (attempt {t.attempts}): "
                                        f"{check} gave up", "Error")
        if t.reason == NOT_REPLACEABLE:
            return (REMEDIATION_FAILED, f"{t.message}; in no MachinePool, so nothing would "
                                        f"replace it: {check} leaves it to a person", "Error")
        if t.state == "Replacing":
            return (t.reason, f"{t.message}; deleted by {check} for MachinePool "
                              "to replace", "Warning")
        if t.state == "Failed":
            return (REMEDIATION_FAILED, f"{t.message}; {t.attempts} reboots did not bring it "
                                        f"back: {check} gave up", "Error")
        return (t.reason, f"{t.message}; reboot {t.attempts} of "
                          f"{mhc.spec.remediation.retry_limit} requested by {check}", "Warning")

    @staticmethod
    def _summarize(mhc: MachineHealthCheck, a: Assessment) -> None:
        st, spec = mhc.status, mhc.spec
        st.expected_machines, st.current_healthy = a.expected, a.healthy
        st.remediations_allowed = a.remediations_allowed
        bad = f"{len(a.not_healthy)} of {a.expected} machines are not healthy"
        limit = f"maxUnhealthy {spec.max_unhealthy}" + (
            f" ({a.limit} of {a.expected})" if isinstance(spec.max_unhealthy, str) else "")
        timed_out = f" (timed out: {', '.join(a.unhealthy)})" if a.unhealthy else ""
        held = f"{bad}{timed_out}, more than {limit} allows: none is remediated"
        if a.short_circuited:
            cond.mark_false(st, REMEDIATION_ALLOWED, TOO_MANY, held, "Warning")
        else:
            cond.mark_true(st, REMEDIATION_ALLOWED, "Allowed", f"{bad}; {limit} allowed")
        failed = [t.machine for t in st.targets if t.state == "Failed"]
        verb = "replacing" if spec.remediation.strategy == "Replace" else "rebooting"
        busy = [t.machine for t in st.targets if t.state != "Failed"]
        if failed:
            what = (f"nothing would replace {', '.join(failed)} (in no MachinePool)"
                    if spec.remediation.strategy == "Replace"
                    else f"rebooting did not bring back {', '.join(failed)}")
            cond.mark_false(st, cond.READY, REMEDIATION_FAILED, what, "Error")
        elif a.short_circuited:
            cond.mark_false(st, cond.READY, TOO_MANY, held, "Warning")
        elif busy:
            cond.mark_false(st, cond.READY, "Remediating",
                            f"{verb} {', '.join(busy)}", "Info")
        else:
            cond.mark_true(st, cond.READY, "Healthy",
                           f"{a.healthy} of {a.expected} machines healthy")

    # --- writes after the check's status ----------------------------------------------------

    async def _act(self, mhc: MachineHealthCheck, plan: Plan) -> None:
        for machine in plan.deletes:
            with contextlib.suppress(NotFound):
                await self.store.delete(Machine, machine.metadata.name, machine.metadata.namespace)
        for machine, request in plan.requests:
            await patch(self.store, copy(machine), ask(request))
        for machine, request in plan.withdrawals:
            await patch(self.store, copy(machine), withdraw(request))
        for name, want in plan.marks:
            machine = plan.machines.get(name)
            if machine is None:
                try:
                    machine = await self.store.get(Machine, name, mhc.metadata.namespace)
                except NotFound:
                    continue
            await self._mark(machine, want)

    async def _mark(self, machine: Machine, want: Want) -> None:
        """The Machine's HealthCheckSucceeded: False as ``want`` says, or gone (None)."""
        await mark(self.store, machine, HEALTH_CHECK,
                   None if want is None else ("False", *want), derive=cond.summarize_machine)

    async def _release(self, mhc: MachineHealthCheck) -> Result | None:
        """A deleted check takes its conditions off the machines it remediated."""
        if FINALIZER not in mhc.metadata.finalizers:
            return None
        for t in mhc.status.targets:
            try:
                machine = await self.store.get(Machine, t.machine, mhc.metadata.namespace)
            except NotFound:
                continue
            await self._mark(machine, None)
        await remove_finalizer(self.store, mhc, FINALIZER)
        return None
