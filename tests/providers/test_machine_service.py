"""The provider Machine reconciler on the real store + bus (nats-server), simulated provider.

Covers: only this region's machines of Clusters using this provider are touched; steps,
providerID, addresses and ProviderReady are written; re-runs (at-least-once delivery,
restarts) never make a second node; provider errors become conditions with the
provider's reason; deletion waits for LCM's drain and releases the node before the
finalizer goes; a health check's reboot request power cycles the node once per request id.
"""

from __future__ import annotations

import contextlib

import pytest

from services.providers import steps as S
from services.providers.errors import QuotaError
from services.providers.machines import LCM_FINALIZER, MachineReconciler, finalizer_for
from services.providers.simulated import SimulatedConfig, SimulatedProvider
from services.providers.steps import PROVIDER_READY, Backoff
from services.providers.targets import SingleTarget
from shared.models import (
    REBOOT_DONE_ANNOTATION,
    REBOOT_GRACEFUL_ANNOTATION,
    REBOOT_OFF_ANNOTATION,
    REBOOT_REQUEST_ANNOTATION,
    Cluster,
    Machine,
    convert,
)
from shared.runtime import Controller, Request, TransientError, status_writer
from shared.runtime import conditions as cond
from shared.store import NotFound
from tests.harness import Harness
from tests.providers.passes import passes_until_running
from tests.providers.powerlog import PowerLog
from tests.waiting import eventually

REGION = "region-one"


def cluster(name: str, provider: str, region: str = REGION) -> Cluster:
    return convert(Cluster, {"metadata": {"name": name, "namespace": "default"},
                             "spec": {"region": region, "provider": provider,
                                      "release": "mke-7-1-0"}})


def machine(name: str, cluster_name: str, region: str = REGION, **spec: object) -> Machine:
    body: dict[str, object] = {"cluster": cluster_name, "region": region}
    body.update(spec)
    return convert(Machine, {"metadata": {"name": name, "namespace": "default"}, "spec": body})


async def get(h: Harness, name: str) -> Machine:
    return await h.store.get(Machine, name, "default")


def reconciler(h: Harness, provider: SimulatedProvider) -> MachineReconciler:
    return MachineReconciler(h.store, "simulated", SingleTarget(provider), region=REGION,
                             poll_interval=0.1, backoff=Backoff(initial=0.1, cap=0.5))


async def running(h: Harness, name: str) -> Machine | None:
    m = await get(h, name)
    return m if m.status.phase == "Running" else None


async def test_provisions_only_its_machines_and_deletes(h: Harness) -> None:
    provider = SimulatedProvider(SimulatedConfig(provision_seconds=0.3, power_seconds=0.2))
    ctl = Controller(name="provider-simulated-machine", kind=Machine,
                     reconciler=reconciler(h, provider), store=h.store, bus=h.bus,
                     region=REGION, workers=2, resync_period=None)
    for c in (cluster("sim", "simulated"), cluster("os", "openstack"),
              cluster("far", "simulated", region="region-two")):
        await h.store.create(c)
    await h.store.create(machine("m1", "sim", simulated={"flavor": "medium"}))
    await h.store.create(machine("other-provider", "os"))
    await h.store.create(machine("other-region", "far", region="region-two"))
    await ctl.start()
    try:
        m = await eventually(lambda: running(h, "m1"), timeout=20, what="m1 running")
        assert finalizer_for("simulated") in m.metadata.finalizers
        assert [(s.name, s.state) for s in m.status.provider_steps] == [
            ("Create", "Done"), ("Inspect", "Done"), ("PowerOn", "Done"), ("Addresses", "Done")]
        assert "4 CPUs, 8192 MiB" in m.status.provider_steps[1].message
        assert m.status.provider_id.startswith("simulated:///")
        assert m.status.addresses and m.status.addresses[0].startswith("10.250.")
        ready = cond.get(m.status, PROVIDER_READY)
        assert ready is not None and ready.status == "True" and ready.reason == "NodeRunning"
        assert len(await provider.nodes.all()) == 1

        for name in ("other-provider", "other-region"):
            other = await get(h, name)
            assert other.metadata.finalizers == [] and other.status.provider_steps == []

        # Deletion: node released first, then the finalizer goes and the Machine with it.
        await h.store.delete(Machine, "m1", "default")

        async def gone() -> bool:
            try:
                await get(h, "m1")
            except NotFound:
                return True
            return False

        await eventually(gone, timeout=20, what="m1 deleted")
        assert await provider.nodes.all() == []
    finally:
        await ctl.stop()


async def test_rerun_and_restart_never_make_a_second_node(h: Harness) -> None:
    provider = SimulatedProvider(SimulatedConfig())
    await h.store.create(cluster("sim", "simulated"))
    await h.store.create(machine("m1", "sim"))
    req = Request("m1", "default")
    for _ in range(3):  # the same event delivered again, or a fresh replica after a crash
        await reconciler(h, provider).reconcile(req)
    assert len(await provider.nodes.all()) == 1
    assert provider.calls["create"] >= 3
    m = await get(h, "m1")
    assert m.status.phase == "Running" and m.status.provider_id


@pytest.mark.parametrize(
    ("fail_with", "reason", "severity", "delays"),
    # Credentials (60 s) and quota (30 s) ask for long waits, capped here at 0.5 s; a
    # timeout asks for nothing and gets the doubling backoff.
    [("credentials", "InvalidCredentials", "Error", [0.5, 0.5]),
     ("quota", "QuotaExceeded", "Warning", [0.5, 0.5]),
     ("timeout", "ProviderTimeout", "Warning", [0.1, 0.2])],
)
async def test_provider_errors_become_conditions(
    h: Harness, fail_with: str, reason: str, severity: str, delays: list[float]
) -> None:
    provider = SimulatedProvider(SimulatedConfig(fail_with=fail_with))  # type: ignore[arg-type]
    rec = reconciler(h, provider)
    await h.store.create(cluster("sim", "simulated"))
    await h.store.create(machine("m1", "sim"))
    with pytest.raises(TransientError) as first:
        await rec.reconcile(Request("m1", "default"))
    with pytest.raises(TransientError) as second:
        await rec.reconcile(Request("m1", "default"))
    assert [first.value.delay, second.value.delay] == pytest.approx(delays)
    m = await get(h, "m1")
    c = cond.get(m.status, PROVIDER_READY)
    assert c is not None and (c.status, c.reason, c.severity) == ("False", reason, severity)
    assert m.status.provider_steps[0].name == "Create"
    assert m.status.provider_steps[0].state == "Failed"
    assert "simulated:" in m.status.provider_steps[0].message


def test_backoff_doubles_to_its_cap_and_honours_retry_after() -> None:
    b = Backoff(initial=1.0, cap=10.0)
    assert [b.next("m") for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert b.next("other") == 1.0, "each object has its own count"
    b.reset("m")
    assert b.next("m") == 1.0
    slow = Backoff(initial=1.0, cap=120.0)
    quota = QuotaError("full", provider="simulated")  # asks for 30 s
    assert [slow.next("q", quota) for _ in range(8)] == [30, 30, 30, 30, 30, 32, 64, 120]


async def test_retry_delays_grow_until_success_resets_them(h: Harness) -> None:
    provider = SimulatedProvider(SimulatedConfig(fail_with="timeout"))  # no retry_after
    rec = MachineReconciler(h.store, "simulated", SingleTarget(provider), region=REGION,
                            poll_interval=0.1, backoff=Backoff(initial=0.1, cap=10.0))
    await h.store.create(cluster("sim", "simulated"))
    await h.store.create(machine("m1", "sim"))

    async def delay() -> float:
        with pytest.raises(TransientError) as err:
            await rec.reconcile(Request("m1", "default"))
        return err.value.delay

    assert [await delay() for _ in range(4)] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    provider.config = SimulatedConfig()
    await rec.reconcile(Request("m1", "default"))  # a success resets the count
    provider.config = SimulatedConfig(fail_with="timeout")
    assert await delay() == pytest.approx(0.1)


async def test_delete_waits_for_lcm_drain(h: Harness) -> None:
    provider = SimulatedProvider(SimulatedConfig())
    rec = reconciler(h, provider)
    await h.store.create(cluster("sim", "simulated"))
    m = machine("m1", "sim")
    m.metadata.finalizers = [LCM_FINALIZER]
    await h.store.create(m)
    await rec.reconcile(Request("m1", "default"))
    await rec.reconcile(Request("m1", "default"))
    assert len(await provider.nodes.all()) == 1
    await h.store.delete(Machine, "m1", "default")
    await rec.reconcile(Request("m1", "default"))
    m = await get(h, "m1")
    assert len(await provider.nodes.all()) == 1, "node kept until LCM drained it"
    c = cond.get(m.status, PROVIDER_READY)
    assert c is not None and c.reason == "WaitingForDrain"

    cond.mark_true(m.status, "Drained", "Drained")
    await h.store.update_status(m)
    await rec.reconcile(Request("m1", "default"))
    assert await provider.nodes.all() == []
    m = await get(h, "m1")
    assert m.metadata.finalizers == [LCM_FINALIZER]
    assert [(s.name, s.state) for s in m.status.provider_steps] == [
        ("PowerOff", "Done"), ("Delete", "Done")]


# --- reboot remediation: the provider's half ---------------------------------------------------


async def ask_reboot(h: Harness, name: str, request: str, *, graceful: bool = False) -> None:
    m = await get(h, name)
    m.metadata.annotations[REBOOT_REQUEST_ANNOTATION] = request
    if graceful:
        m.metadata.annotations[REBOOT_GRACEFUL_ANNOTATION] = request
    await h.store.update(m)


async def test_a_reboot_request_power_cycles_the_node_once_whatever_restarts(h: Harness) -> None:
    """Off, wait until off, on, wait until running, answer: each pass by a fresh reconciler
    (a restarted service, or the same event delivered again), and still one cycle per id."""
    nodes = PowerLog()
    provider = SimulatedProvider(SimulatedConfig(power_seconds=0.3), nodes=nodes)
    await h.store.create(cluster("sim", "simulated"))
    await h.store.create(machine("m1", "sim"))
    req = Request("m1", "default")

    async def provisioned() -> Machine | None:
        await reconciler(h, provider).reconcile(req)
        return await running(h, "m1")

    await eventually(provisioned, timeout=10, what="m1 running")
    uid = (await get(h, "m1")).metadata.uid or ""
    assert nodes.of(uid) == ["On"]  # provisioning powered it on

    await ask_reboot(h, "m1", "r1")
    passes = 0

    async def answered() -> bool:
        nonlocal passes
        passes += 1
        await reconciler(h, provider).reconcile(req)
        m = await get(h, "m1")
        return m.metadata.annotations.get(REBOOT_DONE_ANNOTATION) == "r1"

    await eventually(answered, timeout=10, interval=0.05, what="reboot r1 answered")
    assert passes > 4, "waited for the power changes across several passes"
    for _ in range(3):  # delivered again after the answer: nothing more happens
        await reconciler(h, provider).reconcile(req)
    assert nodes.of(uid) == ["On", "Off", "On"]
    m = await get(h, "m1")
    assert REBOOT_OFF_ANNOTATION not in m.metadata.annotations
    reboot = S.get_step(m.status, "Reboot")
    assert reboot is not None and reboot.state == "Done"
    assert "rebooted as requested (r1)" in reboot.message
    assert [s.name for s in m.status.provider_steps][-1] == "Reboot"
    ready = cond.get(m.status, PROVIDER_READY)
    assert ready is not None and (ready.status, ready.reason) == ("True", "NodeRunning")
    assert m.status.phase == "Running"

    # A new id is a new reboot.
    await ask_reboot(h, "m1", "r2")
    await eventually(answered_with(h, provider, req, "r2"), timeout=10, what="reboot r2")
    assert nodes.of(uid) == ["On", "Off", "On", "Off", "On"]


def answered_with(h: Harness, provider: SimulatedProvider, req: Request, request: str):  # noqa: ANN201
    async def probe() -> bool:
        await reconciler(h, provider).reconcile(req)
        return (await get(h, req.name)).metadata.annotations.get(
            REBOOT_DONE_ANNOTATION) == request
    return probe


@pytest.mark.parametrize("acpi", [True, False])
async def test_a_graceful_reboot_shuts_the_os_down_and_forces_only_past_the_timeout(
    h: Harness, acpi: bool,
) -> None:
    """A graceful request asks the OS to shut down; an OS that does (acpi) is off without
    force. One that does not (hung) is powered off once ``shutdown_timeout`` has passed
    since the reboot began - and not before, however often the Machine is delivered."""
    nodes = PowerLog()
    provider = SimulatedProvider(SimulatedConfig(power_seconds=0.0, acpi=acpi), nodes=nodes)
    await h.store.create(cluster("sim", "simulated"))
    await h.store.create(machine("m1", "sim"))
    req = Request("m1", "default")

    def rec(shutdown_timeout: float) -> MachineReconciler:
        return MachineReconciler(h.store, "simulated", SingleTarget(provider), region=REGION,
                                 poll_interval=0.1, shutdown_timeout=shutdown_timeout)

    for _ in range(2):
        await rec(300).reconcile(req)
    uid = (await get(h, "m1")).metadata.uid or ""
    await ask_reboot(h, "m1", "g1", graceful=True)
    for _ in range(3):
        await rec(300).reconcile(req)
    m = await get(h, "m1")
    step = S.get_step(m.status, "Reboot")
    assert step is not None
    if acpi:
        assert nodes.of(uid) == ["On", "Off (graceful)", "On"]
        assert m.metadata.annotations.get(REBOOT_DONE_ANNOTATION) == "g1"
        assert REBOOT_GRACEFUL_ANNOTATION not in m.metadata.annotations, "answered: cleared"
        return
    # Hung: still waiting for the shutdown, never forced within the timeout.
    assert nodes.of(uid) == ["On", "Off (graceful)"]
    assert step.state == "InProgress" and step.message.startswith("shutting node m1-"), step
    assert REBOOT_DONE_ANNOTATION not in m.metadata.annotations
    # Past the timeout (0 here): the power is cut, and the reboot goes on as any other.
    await eventually(answered_with_timeout(h, req, rec(0), "g1"), timeout=10,
                     what="reboot g1 answered")
    assert nodes.of(uid) == ["On", "Off (graceful)", "Off", "On"]
    m = await get(h, "m1")
    step = S.get_step(m.status, "Reboot")
    assert step is not None and step.state == "Done"


def answered_with_timeout(h: Harness, req: Request, rec: MachineReconciler, request: str):  # noqa: ANN201
    async def probe() -> bool:
        await rec.reconcile(req)
        return (await get(h, req.name)).metadata.annotations.get(
            REBOOT_DONE_ANNOTATION) == request
    return probe


async def test_a_restart_after_the_node_went_off_only_powers_it_on(h: Harness) -> None:
    """The midpoint mark is the state: with it written, a restarted provider that finds the
    node off (or already on again) never powers it off a second time."""
    nodes = PowerLog()
    provider = SimulatedProvider(SimulatedConfig(power_seconds=0.0), nodes=nodes)
    await h.store.create(cluster("sim", "simulated"))
    await h.store.create(machine("m1", "sim"))
    req = Request("m1", "default")
    for _ in range(2):  # power on asked, then found on
        await reconciler(h, provider).reconcile(req)
    m = await get(h, "m1")
    uid = m.metadata.uid or ""
    assert m.status.phase == "Running"
    await ask_reboot(h, "m1", "r1")
    await reconciler(h, provider).reconcile(req)  # asks for power off
    assert nodes.of(uid) == ["On", "Off"]
    await reconciler(h, provider).reconcile(req)  # off: marked, power on asked
    m = await get(h, "m1")
    assert m.metadata.annotations.get(REBOOT_OFF_ANNOTATION) == "r1"
    assert nodes.of(uid) == ["On", "Off", "On"]
    step = S.get_step(m.status, "Reboot")
    assert step is not None and step.state == "InProgress"
    ready = cond.get(m.status, PROVIDER_READY)
    assert ready is not None and ready.reason == "Rebooting"
    # The node is on again; a restarted reconciler only answers.
    await reconciler(h, provider).reconcile(req)
    assert (await get(h, "m1")).metadata.annotations.get(REBOOT_DONE_ANNOTATION) == "r1"
    assert nodes.of(uid) == ["On", "Off", "On"]


async def test_a_reboot_of_a_machine_with_no_node_is_answered_at_once(h: Harness) -> None:
    provider = SimulatedProvider(SimulatedConfig())
    await h.store.create(cluster("sim", "simulated"))
    m = machine("m1", "sim")
    m.metadata.annotations[REBOOT_REQUEST_ANNOTATION] = "r1"
    await h.store.create(m)
    await reconciler(h, provider).reconcile(Request("m1", "default"))
    m = await get(h, "m1")
    assert m.metadata.annotations.get(REBOOT_DONE_ANNOTATION) == "r1"
    step = S.get_step(m.status, "Reboot")
    assert step is not None and step.message.startswith("no node to reboot")
    assert await provider.nodes.all() == [], "nothing was made for the reboot"


async def test_a_reboot_that_does_not_finish_fails_like_a_step_and_is_retried(
    h: Harness,
) -> None:
    provider = SimulatedProvider(SimulatedConfig())
    await h.store.create(cluster("sim", "simulated"))
    await h.store.create(machine("m1", "sim"))
    req = Request("m1", "default")
    for _ in range(2):
        await reconciler(h, provider).reconcile(req)
    assert (await get(h, "m1")).status.phase == "Running"
    provider.config = SimulatedConfig(power_seconds=3600)  # the BMC never gets to it
    rec = MachineReconciler(h.store, "simulated", SingleTarget(provider), region=REGION,
                            poll_interval=0.1, provision_timeout=0.0,
                            backoff=Backoff(initial=0.1, cap=0.5))
    await ask_reboot(h, "m1", "r1")

    async def timed_out() -> TransientError | None:
        try:
            await rec.reconcile(req)
        except TransientError as e:
            return e
        return None

    err = await eventually(timed_out, timeout=5, what="the reboot timing out")
    assert err.delay == pytest.approx(0.1) and "ProviderTimeout" in str(err)
    m = await get(h, "m1")
    step = S.get_step(m.status, "Reboot")
    assert step is not None and step.state == "Failed" and "reboot not done after" in step.message
    ready = cond.get(m.status, PROVIDER_READY)
    assert ready is not None and ready.reason == "ProviderTimeout"
    assert m.status.phase == "Running", "a live node is not called provisioning"
    assert REBOOT_DONE_ANNOTATION not in m.metadata.annotations


async def test_a_running_node_gets_a_pass_when_what_it_reads_changed_or_its_resync_is_due(
    h: Harness,
) -> None:
    provider = SimulatedProvider(SimulatedConfig(provision_seconds=0.1, power_seconds=0.1))
    rec = MachineReconciler(h.store, "simulated", SingleTarget(provider), region=REGION,
                            poll_interval=0.1, resync_interval=1.0,
                            backoff=Backoff(initial=0.1, cap=0.5))
    await h.store.create(cluster("sim", "simulated"))
    await h.store.create(machine("m1", "sim", simulated={}))
    req = Request("m1", "default")
    await passes_until_running(h, rec, req, timeout=20, interval=0.05)

    def looks() -> int:
        return provider.calls.get("status", 0)

    # LCM mirrors its report onto the Machine: nothing the provider reads changed, so the
    # provider is not asked again and the node's resync stays where it was.
    before = looks()
    m = await get(h, "m1")
    async with status_writer(h.store, m, derive=cond.summarize_machine) as w:
        w.status.lcm_phase = "Deploy"
        w.status.node_name = "node-m1"
        cond.mark_false(w.status, "LCMReady", "Deploying", "deploying", "Info")
    result = await rec.reconcile(req)
    assert looks() == before
    assert result is not None and result.requeue_after is not None
    assert 0 < result.requeue_after <= 1.2

    # A label is something it reads: a pass.
    m = await get(h, "m1")
    m.metadata.labels["rack"] = "r1"
    await h.store.update(m)
    await rec.reconcile(req)
    assert looks() == before + 1

    # A field the provider writes, changed by someone else: a pass, which puts it back.
    m = await get(h, "m1")
    addresses = list(m.status.addresses)
    async with status_writer(h.store, m) as w:
        w.status.addresses = []
    await rec.reconcile(req)
    assert looks() > before + 1
    assert (await get(h, "m1")).status.addresses == addresses

    # Nothing changes: passes come again once the resync is due, not before.
    seen = looks()
    await rec.reconcile(req)
    assert looks() == seen

    async def resynced() -> bool:
        await rec.reconcile(req)
        return looks() > seen

    await eventually(resynced, timeout=5, interval=0.05, what="the resync's pass")

    # Deleted: no pass is skipped for it (the deletion is something it reads), the node
    # goes, and the reconciler keeps nothing of the machine.
    await h.store.delete(Machine, "m1", "default")

    async def gone() -> bool:
        with contextlib.suppress(TransientError, NotFound):
            await rec.reconcile(req)
        try:
            await get(h, "m1")
        except NotFound:
            return True
        return False

    await eventually(gone, timeout=10, interval=0.05, what="m1 gone")
    assert provider.calls.get("delete", 0) >= 1 and await provider.nodes.all() == []
    assert rec._settled == {}  # white box: a fleet's churn does not grow it
