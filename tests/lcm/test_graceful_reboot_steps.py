"""GracefulRebootRequest steps on the embedded store, with the clock in the test's hand: each
step is recorded before the write it leads to and redone (same id) after a restart, a
reboot the provider never answers fails the request and is withdrawn, nothing further
starts, and deleting the request lets go of the node it holds."""

from __future__ import annotations

from services.lcm.gracefulreboot import (
    FINALIZER,
    GRACEFUL_REBOOT,
    REBOOT_FAILED,
    GracefulRebootReconciler,
)
from shared.models import (
    CLUSTER_LABEL,
    GRACEFUL_REBOOT_ANNOTATION,
    REBOOT_REQUEST_ANNOTATION,
    Cluster,
    GracefulRebootRequest,
    LCMMachine,
    Machine,
    convert,
)
from shared.runtime import Request, update_status
from shared.runtime import conditions as cond
from shared.store import NotFound
from shared.store.kv import KVStore
from tests.lcm.test_health_check import Clock, set_ready

NS = "default"
T0 = 1_700_000_000.0
ANSWER = 600.0


async def seed(store: KVStore) -> None:
    """Cluster c: m0 (control plane) and m1 (worker), both deployed and Ready."""
    await store.create(convert(Cluster, {
        "metadata": {"name": "c", "namespace": NS},
        "spec": {"region": "local", "provider": "simulated", "release": "mke-3-7-1"}}))
    for name, role in (("m0", "control-plane"), ("m1", "worker")):
        m = await store.create(convert(Machine, {
            "metadata": {"name": name, "namespace": NS},
            "spec": {"cluster": "c", "region": "local", "role": role}}))
        await set_ready(store, name, "True", T0 - 60)
        lm = await store.create(convert(LCMMachine, {
            "metadata": {"name": name, "namespace": NS, "labels": {CLUSTER_LABEL: "c"}},
            "spec": {"cluster": "c", "machine": name, "region": "local", "role": role,
                     "release": "mke-3-7-1", "machineUid": m.metadata.uid}}))
        await update_status(store, lm, lambda o: setattr(o.status, "release", "mke-3-7-1"))
    await store.create(convert(GracefulRebootRequest, {
        "metadata": {"name": "c", "namespace": NS}, "spec": {"region": "local"}}))


async def states(store: KVStore) -> list[tuple[str, str]]:
    grr = await store.get(GracefulRebootRequest, "c", NS)
    return [(t.machine, t.state) for t in grr.status.targets]


async def asked(store: KVStore, name: str) -> str:
    m = await store.get(Machine, name, NS)
    return m.metadata.annotations.get(REBOOT_REQUEST_ANNOTATION, "")


async def node(store: KVStore, name: str) -> LCMMachine:
    return await store.get(LCMMachine, name, NS)


async def test_steps_survive_a_restart_an_unanswered_reboot_fails_and_delete_lets_go(
    kv_store: KVStore,
) -> None:
    store, clock = kv_store, Clock(T0)
    await seed(store)
    uid = (await store.get(GracefulRebootRequest, "c", NS)).metadata.uid
    req = Request("c", NS)
    rec = GracefulRebootReconciler(store, clock=clock, answer_timeout=ANSWER)

    await rec.reconcile(req)
    assert await states(store) == [("m0", "Draining"), ("m1", "Waiting")]
    m0 = await node(store, "m0")
    assert m0.spec.cordoned and m0.metadata.annotations[GRACEFUL_REBOOT_ANNOTATION] == uid
    assert not (await node(store, "m1")).spec.cordoned, "one at a time, control plane first"
    assert rec.index.requests(NS, "c") == [req]
    grr = await store.get(GracefulRebootRequest, "c", NS)
    assert FINALIZER in grr.metadata.finalizers and grr.status.phase == "InProgress"

    # Not drained yet: no reboot asked, however often it is reconciled.
    await rec.reconcile(req)
    assert await states(store) == [("m0", "Draining"), ("m1", "Waiting")]
    assert await asked(store, "m0") == ""

    await update_status(store, m0, lambda o: setattr(o.status, "cordoned", True))  # drained
    clock.t = T0 + 10
    result = await rec.reconcile(req)
    assert result is not None and result.requeue_after == ANSWER
    (t0, _) = (await store.get(GracefulRebootRequest, "c", NS)).status.targets
    assert t0.state == "Rebooting" and t0.request_id
    m = await store.get(Machine, "m0", NS)
    assert m.metadata.annotations[REBOOT_REQUEST_ANNOTATION] == t0.request_id

    # A restart (a new reconciler) resends the recorded request, never a second one.
    m.metadata.annotations.pop(REBOOT_REQUEST_ANNOTATION)
    await store.update(m)
    rec = GracefulRebootReconciler(store, clock=clock, answer_timeout=ANSWER)
    await rec.reconcile(req)
    (again, _) = (await store.get(GracefulRebootRequest, "c", NS)).status.targets
    assert again.request_id == t0.request_id
    m = await store.get(Machine, "m0", NS)
    assert m.metadata.annotations[REBOOT_REQUEST_ANNOTATION] == t0.request_id

    # The provider never answers: the request fails, the reboot is withdrawn, m1 never starts.
    clock.t = T0 + 10 + ANSWER
    await rec.reconcile(req)
    assert await states(store) == [("m0", "Failed"), ("m1", "Waiting")]
    grr = await store.get(GracefulRebootRequest, "c", NS)
    ready = cond.get(grr.status, "Ready")
    assert grr.status.phase == "Failed" and ready is not None
    assert (ready.status, ready.reason) == ("False", REBOOT_FAILED)
    assert ready.message.startswith(f"m0: its provider did not answer reboot request "
                                    f"{t0.request_id}")
    assert await asked(store, "m0") == ""
    await rec.reconcile(req)
    assert not (await node(store, "m1")).spec.cordoned
    # The cluster and the machine say so (an Error: a person must act).
    for cls, name in ((Cluster, "c"), (Machine, "m0")):
        c = cond.get((await store.get(cls, name, NS)).status, GRACEFUL_REBOOT)
        assert c is not None and (c.status, c.reason, c.severity) == (
            "False", REBOOT_FAILED, "Error"), (name, c)

    # Deleting the request lets go of m0: unmarked and uncordoned, then the request is gone.
    await store.delete(GracefulRebootRequest, "c", NS)
    await rec.reconcile(req)
    m0 = await node(store, "m0")
    assert not m0.spec.cordoned and GRACEFUL_REBOOT_ANNOTATION not in m0.metadata.annotations
    try:
        await store.get(GracefulRebootRequest, "c", NS)
        raise AssertionError("the request should be gone")
    except NotFound:
        pass
    assert rec.index.requests(NS, "c") == []
    c = cond.get((await store.get(Cluster, "c", NS)).status, GRACEFUL_REBOOT)
    assert c is not None and (c.status, c.reason, c.message) == (
        "False", "Cancelled", "the request was deleted with 0 of 2 machines rebooted")


async def test_a_machine_that_is_not_ready_is_waited_for(kv_store: KVStore) -> None:
    store, clock = kv_store, Clock(T0)
    await seed(store)
    await set_ready(store, "m0", "False", T0)
    rec = GracefulRebootReconciler(store, clock=clock)
    await rec.reconcile(Request("c", NS))
    assert await states(store) == [("m0", "Waiting"), ("m1", "Waiting")]
    grr = await store.get(GracefulRebootRequest, "c", NS)
    ready = cond.get(grr.status, "Ready")
    assert ready is not None and (ready.reason, ready.message) == (
        "Waiting", "waits: m0 is not Ready; 0 of 2 machines rebooted")
    assert grr.status.phase == "Pending"
    assert not (await node(store, "m0")).spec.cordoned
    assert not (await node(store, "m1")).spec.cordoned, "the upgrade order: m0 goes first"
