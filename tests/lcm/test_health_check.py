"""MachineHealthCheck judging and remediation decisions, with the clock in the test's hand.

Pure functions first (``services.lcm.health``): timeouts from lastTransitionTime, node
startup, skipped machines, maxUnhealthy as a count and a percentage, and what to do next
for a machine under remediation. Then the reconciler on the embedded store with a fixed
clock: the requeue is the moment the next timeout runs out, the attempt is recorded before
the annotation, a lost annotation is resent (not a new attempt), the retry limit ends in
RemediationFailed on the Machine, and a recovered machine is let go.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from services.lcm.health import (
    ANSWER_TIMEOUT,
    Assessment,
    Verdict,
    allowed_unhealthy,
    assess,
    epoch,
    judge,
    next_step,
)
from services.lcm.healthcheck import (
    FINALIZER,
    HEALTH_CHECK,
    SLACK,
    HealthCheckReconciler,
    upgrading,
)
from shared.models import (
    POOL_LABEL,
    REBOOT_DONE_ANNOTATION,
    REBOOT_REQUEST_ANNOTATION,
    Cluster,
    Condition,
    HealthCheckTarget,
    LCMMachine,
    Machine,
    MachineHealthCheck,
    MachineHealthCheckSpec,
    convert,
)
from shared.runtime import Request, update_status
from shared.runtime import conditions as cond
from shared.runtime.paused import PAUSED_ANNOTATION
from shared.store.kv import KVStore

NS = "default"
T0 = 1_700_000_000.0  # a whole second: condition times have second precision


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_spec(name: str = "hc", **spec: object) -> MachineHealthCheck:
    body = {"cluster": "c", "region": "local",
            "unhealthyConditions": [{"type": "Ready", "status": "False", "timeoutSeconds": 60},
                                    {"type": "Ready", "status": "Unknown", "timeoutSeconds": 30}],
            "nodeStartupTimeoutSeconds": 600, "maxUnhealthy": 1,
            "remediation": {"retryLimit": 2, "retryIntervalSeconds": 100}} | spec
    return convert(MachineHealthCheck, {"metadata": {"name": name, "namespace": NS},
                                        "spec": body})


def machine(name: str = "m", *, ready: str | None = "True", since: float = T0,
            created: float = T0 - 3600, provider_since: float | None = None,
            **spec: object) -> Machine:
    m = convert(Machine, {"metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}",
                                       "creationTimestamp": iso(created)},
                          "spec": {"cluster": "c", "region": "local"} | spec})
    if ready is not None:
        m.status.conditions.append(Condition(type="Ready", status=ready,  # type: ignore[arg-type]
                                             reason="HeartbeatMissing",
                                             last_transition_time=iso(since)))
    if provider_since is not None:
        m.status.conditions.append(Condition(type="ProviderReady", status="True",
                                             last_transition_time=iso(provider_since)))
    return m


def node(name: str = "m", *, release: str = "mke-3-7-1", cordoned: bool = False) -> LCMMachine:
    lm = convert(LCMMachine, {"metadata": {"name": name, "namespace": NS},
                              "spec": {"cluster": "c", "machine": name, "region": "local",
                                       "machineUid": f"uid-{name}", "cordoned": cordoned}})
    lm.status.release = release
    return lm


SPEC = check_spec().spec


# --- judging one machine --------------------------------------------------------------------


def test_a_condition_is_unhealthy_only_past_its_timeout() -> None:
    m, lm = machine(ready="False", since=T0), node()
    pending = judge(m, lm, SPEC, now=T0 + 45)
    assert (pending.state, pending.recheck) == ("pending", 15)
    late = judge(m, lm, SPEC, now=T0 + 60)
    assert (late.state, late.reason) == ("unhealthy", "UnhealthyCondition")
    assert late.message == "Ready False for more than 60s (reason HeartbeatMissing)"
    # Each status has its own timeout; a status the check does not list is no concern.
    assert judge(machine(ready="Unknown", since=T0), lm, SPEC, now=T0 + 31).state == "unhealthy"
    assert judge(machine(ready="True", since=T0), lm, SPEC, now=T0 + 9999) == Verdict("healthy")
    assert judge(machine(ready=None), lm, SPEC, now=T0 + 9999).state == "healthy"


def test_the_nearest_timeout_is_the_recheck() -> None:
    spec = check_spec(unhealthyConditions=[
        {"type": "Ready", "status": "False", "timeoutSeconds": 60},
        {"type": "LCMReady", "status": "False", "timeoutSeconds": 20}]).spec
    m = machine(ready="False", since=T0)
    m.status.conditions.append(Condition(type="LCMReady", status="False",
                                         last_transition_time=iso(T0 + 30)))
    v = judge(m, node(), spec, now=T0 + 40)
    assert (v.state, v.recheck) == ("pending", 10)  # LCMReady's runs out at T0+50, Ready's at +60


def test_a_node_that_never_came_up_is_judged_by_the_startup_timeout() -> None:
    # No LCMMachine, or one that never finished a release: Ready False while deploying is
    # no failure, only the startup timeout counts - from the provider's node running ...
    m = machine(ready="False", since=T0 - 5000, provider_since=T0)
    for lm in (None, node(release="")):
        v = judge(m, lm, SPEC, now=T0 + 599)
        assert (v.state, v.recheck) == ("pending", 1)
        late = judge(m, lm, SPEC, now=T0 + 600)
        assert (late.state, late.reason) == ("unhealthy", "NodeStartupTimeout")
    # ... else from the Machine's creation; 0 turns the check off.
    assert judge(machine(created=T0), None, SPEC, now=T0 + 600).state == "unhealthy"
    assert judge(machine(created=T0), None, SPEC, now=T0 + 100).state == "pending"
    off = check_spec(nodeStartupTimeoutSeconds=0).spec
    assert judge(machine(created=T0), None, off, now=T0 + 10**6).state == "healthy"


@pytest.mark.parametrize(("why", "build", "upgrade"), [
    ("Maintenance", lambda: machine(ready="False", maintenance=True), False),
    ("Maintenance", lambda: _with_condition(machine(ready="False"), "Maintenance"), False),
    ("Paused", lambda: _annotated(machine(ready="False"), PAUSED_ANNOTATION), False),
    ("Deleting", lambda: _deleting(machine(ready="False")), False),
    ("ClusterUpgrading", lambda: machine(ready="False"), True),
])
def test_machines_out_of_service_on_purpose_are_skipped(why, build, upgrade) -> None:  # noqa: ANN001
    v = judge(build(), node(), SPEC, now=T0 + 10**6, upgrading=upgrade)
    assert (v.state, v.reason) == ("skipped", why)


def test_a_node_lcm_cordoned_is_skipped() -> None:
    v = judge(machine(ready="False"), node(cordoned=True), SPEC, now=T0 + 10**6)
    assert (v.state, v.reason) == ("skipped", "Cordoned")


def _with_condition(m: Machine, type_: str) -> Machine:
    m.status.conditions.append(Condition(type=type_, status="False"))
    return m


def _annotated(m: Machine, key: str) -> Machine:
    m.metadata.annotations[key] = "x"
    return m


def _deleting(m: Machine) -> Machine:
    m.metadata.deletion_timestamp = iso(T0)
    return m


def test_a_cluster_is_upgrading_while_its_rollout_runs_or_stopped_at_a_failure() -> None:
    c = convert(Cluster, {"metadata": {"name": "c", "namespace": NS},
                          "spec": {"region": "local", "provider": "simulated",
                                   "release": "mke-3-7-1"}})
    assert not upgrading(c)
    c.status.phase = "Upgrading"
    assert upgrading(c)
    c.status.phase = "Failed"
    cond.mark_false(c.status, "Upgraded", "UpgradeFailed", "stopped at w0", "Error")
    assert upgrading(c)
    cond.mark_true(c.status, "Upgraded", "Current")
    c.status.phase = "Ready"
    assert not upgrading(c)


# --- the fleet: maxUnhealthy ----------------------------------------------------------------


@pytest.mark.parametrize(("max_unhealthy", "expected", "count"), [
    (3, 10, 3), (0, 10, 0), ("40%", 5, 2), ("40%", 3, 1), ("40%", 2, 0), ("100%", 7, 7),
    ("0%", 7, 0), ("33%", 10, 3),
])
def test_max_unhealthy_counts_or_rounds_a_percentage_down(max_unhealthy, expected, count) -> None:  # noqa: ANN001
    assert allowed_unhealthy(max_unhealthy, expected) == count


def _fleet(ready: dict[str, tuple[str, float]]) -> tuple[list[Machine], dict[str, LCMMachine]]:
    ms = [machine(n, ready=s, since=t) for n, (s, t) in ready.items()]
    return ms, {n: node(n) for n in ready}


def test_pending_machines_count_against_max_unhealthy() -> None:
    """A partition flips machines a moment apart: the first to time out is not remediated
    while the others, not timed out yet, already count."""
    ms, lms = _fleet({"a": ("False", T0), "b": ("False", T0 + 2), "c": ("True", T0)})
    a = assess(ms, lms, SPEC, now=T0 + 61)  # a timed out, b has 1 s to go
    assert (a.unhealthy, a.not_healthy, a.limit) == (["a"], ["a", "b"], 1)
    assert a.short_circuited and a.remediations_allowed == 0
    assert (a.expected, a.healthy, a.recheck) == (3, 1, 1)
    one = assess(ms[:1] + ms[2:], lms, SPEC, now=T0 + 61)
    assert not one.short_circuited and one.remediations_allowed == 0 and one.unhealthy == ["a"]


def test_skipped_machines_count_neither_way_and_deleting_ones_are_not_expected() -> None:
    ms, lms = _fleet({"a": ("False", T0), "b": ("False", T0), "c": ("True", T0)})
    ms[1].spec.maintenance = True
    _deleting(ms[2])
    a = assess(ms, lms, check_spec(maxUnhealthy="50%").spec, now=T0 + 100)
    assert a.verdicts["b"].state == a.verdicts["c"].state == "skipped"
    assert (a.expected, a.healthy, a.limit, a.unhealthy) == (2, 0, 1, ["a"])
    assert not a.short_circuited


def test_an_empty_fleet_is_no_short_circuit() -> None:
    a = assess([], {}, check_spec(maxUnhealthy="40%").spec, now=T0)
    assert a == Assessment() and not a.short_circuited and a.recheck is None


# --- what to do for an unhealthy machine ------------------------------------------------------


def target(**kw: object) -> HealthCheckTarget:
    return HealthCheckTarget(**({"machine": "m", "state": "Rebooting", "attempts": 1,
                                 "last_attempt_time": iso(T0), "request_id": "r1"} | kw))


def annotated(request: str = "", done: str = "") -> Machine:
    m = machine(ready="False")
    if request:
        m.metadata.annotations[REBOOT_REQUEST_ANNOTATION] = request
    if done:
        m.metadata.annotations[REBOOT_DONE_ANNOTATION] = done
    return m


def test_next_step_follows_the_annotations_and_the_retry_interval() -> None:
    rem = SPEC.remediation  # 2 reboots, 100 s apart
    assert next_step(None, annotated(), rem, now=T0).action == "reboot"
    # Asked and not done: the provider is at it.
    assert next_step(target(), annotated("r1"), rem, now=T0 + 500).action == "wait"
    # Recorded but never written (a restart in between), or overwritten: the same id again.
    assert next_step(target(), annotated(), rem, now=T0 + 1).action == "resend"
    assert next_step(target(), annotated("old", "old"), rem, now=T0 + 1).action == "resend"
    # Done: the next attempt no sooner than the interval after the last.
    step = next_step(target(), annotated("r1", "r1"), rem, now=T0 + 30)
    assert (step.action, step.recheck) == ("wait", 70)
    assert next_step(target(), annotated("r1", "r1"), rem, now=T0 + 100).action == "reboot"
    # The limit reached: give up once the last reboot had its interval, then nothing.
    last = target(attempts=2)
    assert next_step(last, annotated("r1", "r1"), rem, now=T0 + 99).action == "wait"
    assert next_step(last, annotated("r1", "r1"), rem, now=T0 + 100).action == "give_up"
    assert next_step(target(state="Failed"), annotated("r1", "r1"), rem,
                     now=T0 + 10**6).action == "none"


async def test_a_reboot_the_provider_never_answers_is_given_up_on(kv_store: KVStore) -> None:
    """A provider that is down (or cannot reach the node's power) never answers: once the
    request is ANSWER_TIMEOUT old the check stops waiting, withdraws it, says so on the
    Machine (and the RemediationFailed alert fires), and makes no second request; a machine
    that comes back by itself is let go."""
    store, clock = kv_store, Clock(T0 + 1000)
    rec, req, t = await first_reboot(store, clock)
    clock.t += ANSWER_TIMEOUT - 1
    assert (await rec.reconcile(req)).requeue_after == pytest.approx(1 + SLACK)
    clock.t += 1
    await rec.reconcile(req)
    (failed,) = (await store.get(MachineHealthCheck, "hc", NS)).status.targets
    assert (failed.state, failed.reason, failed.request_id) == ("Failed", "RebootNotAnswered",
                                                                t.request_id)
    m0 = await store.get(Machine, "m0", NS)
    # Withdrawn, so a provider coming back later does not power cycle the node then; and
    # no second request.
    assert REBOOT_REQUEST_ANNOTATION not in m0.metadata.annotations
    hcs = cond.get(m0.status, HEALTH_CHECK)
    assert hcs is not None and hcs.reason == "RemediationFailed"
    assert f"did not answer reboot request {t.request_id}" in hcs.message
    clock.t += 10_000  # stays given up, with no request, until the machine is healthy
    await rec.reconcile(req)
    assert (await store.get(MachineHealthCheck, "hc", NS)).status.targets == [failed]
    await set_ready(store, "m0", "True", clock.t)
    await rec.reconcile(req)
    assert (await store.get(MachineHealthCheck, "hc", NS)).status.targets == []


def test_a_timeout_counts_from_when_the_node_came_up() -> None:
    """A Machine is not Ready while its node deploys: a node that just finished deploying
    (ItemsReady True) is not unhealthy for a Ready False older than that."""
    m, lm = machine(ready="False", since=T0), node()
    lm.status.conditions.append(Condition(type="ItemsReady", status="True",
                                          last_transition_time=iso(T0 + 50)))
    v = judge(m, lm, SPEC, now=T0 + 70)
    assert (v.state, v.recheck) == ("pending", 40)
    assert judge(m, lm, SPEC, now=T0 + 110).state == "unhealthy"


def test_epoch_reads_seconds_and_milliseconds() -> None:
    assert epoch(iso(T0)) == T0
    assert epoch("2023-11-14T22:13:20.250Z") == T0 + 0.25
    assert epoch("") is None and epoch("yesterday") is None


# --- the reconciler on the store, with a fixed clock -------------------------------------------


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


async def seed(store: KVStore, names: list[str], **check: object) -> None:
    await store.create(convert(Cluster, {
        "metadata": {"name": "c", "namespace": NS},
        "spec": {"region": "local", "provider": "simulated", "release": "mke-3-7-1"}}))
    for n in names:
        m = await store.create(convert(Machine, {
            "metadata": {"name": n, "namespace": NS, "labels": {"tier": "w"}},
            "spec": {"cluster": "c", "region": "local"}}))
        lm = node(n)
        lm.spec.machine_uid = m.metadata.uid or ""
        lm.metadata.labels["kaas.containercloud.dev/cluster"] = "c"
        created = await store.create(lm)
        await update_status(store, created, lambda o: setattr(o.status, "release", "mke-3-7-1"))
    await store.create(check_spec(**check))


async def set_ready(store: KVStore, name: str, status: str, since: float) -> None:
    """Ready as LCM's half makes it (what summarize_machine derives), since ``since``."""
    reason = "Ready" if status == "True" else "HeartbeatMissing"

    def mutate(m: Machine) -> None:
        kept = [c for c in m.status.conditions
                if c.type not in ("ProviderReady", "LCMReady", "Ready")]
        m.status.conditions = [
            *kept,
            Condition(type="ProviderReady", status="True", reason="NodeRunning",
                      last_transition_time=iso(T0 - 3600)),
            *(Condition(type=t, status=status, reason=reason,  # type: ignore[arg-type]
                        severity="" if status == "True" else "Error",
                        last_transition_time=iso(since)) for t in ("LCMReady", "Ready"))]
    await update_status(store, await store.get(Machine, name, NS), mutate)


async def first_reboot(store: KVStore, clock: Clock,
                       ) -> tuple[HealthCheckReconciler, Request, HealthCheckTarget]:
    """m0 of three timed out (m1 and m2 Ready) and a pass made: its reboot requested."""
    await seed(store, ["m0", "m1", "m2"], maxUnhealthy=1)
    for n in ("m1", "m2"):
        await set_ready(store, n, "True", T0)
    await set_ready(store, "m0", "False", T0)
    rec = HealthCheckReconciler(store, clock=clock)
    req = Request("hc", NS)
    await rec.reconcile(req)
    (t,) = (await store.get(MachineHealthCheck, "hc", NS)).status.targets
    return rec, req, t


async def ack(store: KVStore, name: str) -> str:
    """Play the provider: answer the pending request."""
    m = await store.get(Machine, name, NS)
    request = m.metadata.annotations[REBOOT_REQUEST_ANNOTATION]
    m.metadata.annotations[REBOOT_DONE_ANNOTATION] = request
    await store.update(m)
    return request


async def test_the_reconciler_requeues_at_the_next_timeout_and_reboots_once_per_interval(
    kv_store: KVStore,
) -> None:
    store, clock = kv_store, Clock(T0)
    await seed(store, ["m0", "m1", "m2"], maxUnhealthy="40%")
    rec = HealthCheckReconciler(store, clock=clock)
    req = Request("hc", NS)
    for n in ("m0", "m1", "m2"):
        await set_ready(store, n, "True", T0 - 10)

    assert (await rec.reconcile(req)).requeue_after is None  # all healthy: nothing to wait for
    hc = await store.get(MachineHealthCheck, "hc", NS)
    assert FINALIZER in hc.metadata.finalizers
    assert (hc.status.expected_machines, hc.status.current_healthy) == (3, 3)
    assert cond.is_true(hc.status, "Ready") and cond.is_true(hc.status, "RemediationAllowed")
    # The index a Machine event of cluster c is mapped through now knows the check.
    assert rec.index.requests(NS, "c") == [req]

    await set_ready(store, "m0", "False", T0)
    clock.t = T0 + 45
    result = await rec.reconcile(req)
    assert result.requeue_after == pytest.approx(15 + SLACK)
    assert REBOOT_REQUEST_ANNOTATION not in (await store.get(Machine, "m0", NS)
                                             ).metadata.annotations

    clock.t = T0 + 60
    await rec.reconcile(req)
    hc = await store.get(MachineHealthCheck, "hc", NS)
    (t,) = hc.status.targets
    assert (t.machine, t.state, t.attempts, t.reason) == ("m0", "Rebooting", 1,
                                                          "UnhealthyCondition")
    m0 = await store.get(Machine, "m0", NS)
    assert m0.metadata.annotations[REBOOT_REQUEST_ANNOTATION] == t.request_id
    hcs = cond.get(m0.status, HEALTH_CHECK)
    assert hcs is not None and (hcs.status, hcs.reason) == ("False", "UnhealthyCondition")
    assert "reboot 1 of 2 requested by MachineHealthCheck hc" in hcs.message
    assert not cond.is_true(hc.status, "Ready")

    # Redelivered while the provider works: no second request.
    clock.t = T0 + 120
    # The provider's answer wakes it; else it looks again when the answer is overdue.
    assert (await rec.reconcile(req)).requeue_after == pytest.approx(
        T0 + 60 + ANSWER_TIMEOUT - clock.t + SLACK)
    assert (await store.get(MachineHealthCheck, "hc", NS)).status.targets == [t]

    first = await ack(store, "m0")
    assert epoch(t.last_attempt_time) == T0 + 60
    clock.t = T0 + 130  # done, but m0 is still down: the next reboot after the interval
    result = await rec.reconcile(req)
    assert result.requeue_after == pytest.approx(30 + SLACK)
    assert (await store.get(MachineHealthCheck, "hc", NS)).status.targets[0].state == "Rebooted"
    clock.t = T0 + 160
    await rec.reconcile(req)
    (t2,) = (await store.get(MachineHealthCheck, "hc", NS)).status.targets
    assert t2.attempts == 2 and t2.request_id != first
    assert (await store.get(Machine, "m0", NS)).metadata.annotations[
        REBOOT_REQUEST_ANNOTATION] == t2.request_id

    # The second reboot did not help either: after its interval the check gives up.
    await ack(store, "m0")
    assert epoch(t2.last_attempt_time) == T0 + 160
    clock.t = T0 + 260
    assert (await rec.reconcile(req)).requeue_after is None
    hc = await store.get(MachineHealthCheck, "hc", NS)
    assert [(x.state, x.attempts) for x in hc.status.targets] == [("Failed", 2)]
    ready = cond.get(hc.status, "Ready")
    assert ready is not None and ready.reason == "RemediationFailed"
    m0 = await store.get(Machine, "m0", NS)
    failed = cond.get(m0.status, HEALTH_CHECK)
    assert failed is not None and (failed.reason, failed.severity) == ("RemediationFailed",
                                                                      "Error")
    assert m0.metadata.annotations[REBOOT_REQUEST_ANNOTATION] == t2.request_id, "no third"

    # It comes back on its own: let go, condition gone.
    await set_ready(store, "m0", "True", clock.t)
    await rec.reconcile(req)
    hc = await store.get(MachineHealthCheck, "hc", NS)
    assert hc.status.targets == [] and cond.is_true(hc.status, "Ready")
    assert cond.get((await store.get(Machine, "m0", NS)).status, HEALTH_CHECK) is None


async def test_a_lost_request_is_resent_not_made_again(kv_store: KVStore) -> None:
    """The attempt is in the check's status before the annotation: a crash between the two
    (here: the annotation removed) resends the recorded id, it is no second attempt."""
    store, clock = kv_store, Clock(T0 + 1000)
    _, _, t = await first_reboot(store, clock)
    m0 = await store.get(Machine, "m0", NS)
    del m0.metadata.annotations[REBOOT_REQUEST_ANNOTATION]
    await store.update(m0)
    await HealthCheckReconciler(store, clock=clock).reconcile(Request("hc", NS))  # a restart
    assert (await store.get(MachineHealthCheck, "hc", NS)).status.targets == [t]
    assert (await store.get(Machine, "m0", NS)).metadata.annotations[
        REBOOT_REQUEST_ANNOTATION] == t.request_id


async def test_too_many_unhealthy_remediates_none_and_the_selector_limits_the_check(
    kv_store: KVStore,
) -> None:
    store, clock = kv_store, Clock(T0 + 1000)
    await seed(store, ["m0", "m1", "m2"], maxUnhealthy="40%")
    for n in ("m0", "m1"):
        await set_ready(store, n, "False", T0)
    await set_ready(store, "m2", "True", T0)
    rec = HealthCheckReconciler(store, clock=clock)
    await rec.reconcile(Request("hc", NS))
    hc = await store.get(MachineHealthCheck, "hc", NS)
    allowed = cond.get(hc.status, "RemediationAllowed")
    assert allowed is not None and (allowed.status, allowed.reason) == ("False",
                                                                       "TooManyUnhealthy")
    assert allowed.message == ("2 of 3 machines are not healthy (timed out: m0, m1), more "
                               "than maxUnhealthy 40% (1 of 3) allows: none is remediated")
    assert hc.status.targets == [] and hc.status.remediations_allowed == 0
    for n in ("m0", "m1"):
        assert REBOOT_REQUEST_ANNOTATION not in (await store.get(Machine, n, NS)
                                                 ).metadata.annotations

    # A check of m0 alone (by label) may remediate it: 1 of 1 unhealthy, 100% allowed.
    m0 = await store.get(Machine, "m0", NS)
    m0.metadata.labels["solo"] = "yes"
    await store.update(m0)
    await store.create(check_spec("solo", selector={"matchLabels": {"solo": "yes"}},
                                  maxUnhealthy="100%"))
    await rec.reconcile(Request("solo", NS))
    solo = await store.get(MachineHealthCheck, "solo", NS)
    assert solo.status.expected_machines == 1
    assert [t.machine for t in solo.status.targets] == ["m0"]


async def test_a_target_is_kept_until_the_machine_is_healthy_with_no_reboot_in_flight(
    kv_store: KVStore,
) -> None:
    """Recovering while its reboot is still in flight lets nothing go (the reboot takes the
    node down again), nor does a count that only restarted because of the reboot: the
    attempts are kept until the machine is healthy and the provider has answered."""
    store, clock = kv_store, Clock(T0 + 1000)
    rec, req, t = await first_reboot(store, clock)

    await set_ready(store, "m0", "True", T0 + 1001)  # back before the provider got to it
    clock.t = T0 + 1002
    await rec.reconcile(req)
    assert (await store.get(MachineHealthCheck, "hc", NS)).status.targets == [t]

    await ack(store, "m0")
    await set_ready(store, "m0", "False", T0 + 1003)  # the reboot took it down
    clock.t = T0 + 1004
    result = await rec.reconcile(req)
    assert result.requeue_after == pytest.approx(59 + SLACK)  # when Ready False times out
    (kept,) = (await store.get(MachineHealthCheck, "hc", NS)).status.targets
    assert (kept.attempts, kept.request_id, kept.state) == (1, t.request_id, "Rebooted")
    assert cond.get((await store.get(Machine, "m0", NS)).status, HEALTH_CHECK) is not None

    await set_ready(store, "m0", "True", T0 + 1005)
    clock.t = T0 + 1006
    await rec.reconcile(req)
    assert (await store.get(MachineHealthCheck, "hc", NS)).status.targets == []
    assert cond.get((await store.get(Machine, "m0", NS)).status, HEALTH_CHECK) is None


async def test_replace_deletes_a_pools_machine_once_and_gives_up_on_one_of_no_pool(
    kv_store: KVStore,
) -> None:
    """Replace (Cluster API's remediation): an unhealthy machine of a MachinePool is deleted
    for its pool to make anew - once, however often the check runs meanwhile; one of no
    pool has nothing to replace it and is given up on; the target goes with the machine."""
    store, clock = kv_store, Clock(T0 + 1000)
    await seed(store, ["m0", "m1", "m2", "m3"], maxUnhealthy=2,
               remediation={"strategy": "Replace"})
    m0 = await store.get(Machine, "m0", NS)
    m0.metadata.labels[POOL_LABEL] = "workers"
    m0.metadata.finalizers.append("test/node")  # its node is being deleted meanwhile
    await store.update(m0)
    for n in ("m2", "m3"):
        await set_ready(store, n, "True", T0)
    for n in ("m0", "m1"):
        await set_ready(store, n, "False", T0)
    rec = HealthCheckReconciler(store, clock=clock)
    await rec.reconcile(Request("hc", NS))
    hc = await store.get(MachineHealthCheck, "hc", NS)
    targets = {t.machine: (t.state, t.reason) for t in hc.status.targets}
    assert targets == {"m0": ("Replacing", "UnhealthyCondition"),
                       "m1": ("Failed", "NotReplaceable")}
    m0 = await store.get(Machine, "m0", NS)
    assert m0.deleting and REBOOT_REQUEST_ANNOTATION not in m0.metadata.annotations
    m1 = await store.get(Machine, "m1", NS)
    assert not m1.deleting
    failed = cond.get(m1.status, HEALTH_CHECK)
    assert failed is not None and failed.reason == "RemediationFailed"
    assert "nothing would replace it" in failed.message
    ready = cond.get(hc.status, "Ready")
    assert ready is not None and ready.reason == "RemediationFailed"
    assert "nothing would replace m1 (in no MachinePool)" in ready.message

    clock.t += 500  # later passes: no second delete, the targets stay as they are
    await rec.reconcile(Request("hc", NS))
    hc = await store.get(MachineHealthCheck, "hc", NS)
    assert {t.machine: t.state for t in hc.status.targets} == {"m0": "Replacing",
                                                                "m1": "Failed"}
    m0 = await store.get(Machine, "m0", NS)
    m0.metadata.finalizers.remove("test/node")
    await store.update(m0)  # the node is gone: so is the Machine
    await rec.reconcile(Request("hc", NS))
    hc = await store.get(MachineHealthCheck, "hc", NS)
    assert [t.machine for t in hc.status.targets] == ["m1"]


def test_the_example_check_reads_as_documented() -> None:
    import yaml

    path = Path(__file__).resolve().parents[2] / "examples/health-check/demo.yaml"
    hc = convert(MachineHealthCheck, yaml.safe_load(path.read_text()))
    # The example spells out the defaults.
    assert hc.spec == MachineHealthCheckSpec(cluster="demo", region="local")
