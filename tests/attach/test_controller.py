"""The AttachedCluster controller end to end: store + bus + bridge on the real nats-server,
the reconciler probing the fake Kubernetes API through the real kubernetes-asyncio client.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client as NATS

from services.attach import conditions as ac
from services.attach.reconciler import FINALIZER, AttachedClusterReconciler
from shared.models import AttachedCluster
from shared.runtime import Request, Result
from shared.runtime import conditions as cond
from shared.store import NotFound
from tests.attach.conftest import (
    NODES,
    REGION,
    TOKEN,
    Attach,
    attached,
    fetch,
    kubeconfig_text,
    leaks,
    running,
)
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.waiting import eventually


def reason(obj: AttachedCluster, type_: str) -> str | None:
    c = cond.get(obj.status, type_)
    return c and f"{c.status}/{c.reason}"


def message(obj: AttachedCluster, type_: str) -> str:
    c = cond.get(obj.status, type_)
    assert c is not None, f"no {type_} condition"
    return c.message


async def ready(a: Attach, name: str) -> AttachedCluster:
    async def probe() -> AttachedCluster | None:
        obj = await fetch(a.store, name)
        return obj if cond.is_true(obj.status, cond.READY) else None

    return await eventually(probe, what=f"{name} Ready")


async def test_attach_reads_version_and_nodes(
    attach: Attach, kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    await attach.store.create(attached("mke", kube.url, kubeconfig_text(kube, tmp_path)))
    obj = await ready(attach, "mke")
    st = obj.status
    assert st.kubernetes_version == "v1.27.7"
    assert st.nodes == NODES
    assert [n.ready for n in st.node_details] == [True, True, True]
    assert st.ready_nodes == 3
    assert st.healthy and st.phase == ac.PHASE_READY and st.last_probe
    assert reason(obj, ac.CONNECTED) == "True/Verified"
    assert reason(obj, ac.HEALTHY) == "True/NodesReady"
    assert st.observed_generation == obj.metadata.generation
    assert FINALIZER in obj.metadata.finalizers


async def test_node_changes_show_up_on_the_next_poll(
    attach: Attach, kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    await attach.store.create(attached("mke", kube.url, kubeconfig_text(kube, tmp_path)))
    await ready(attach, "mke")
    kube.set_nodes([*NODES, "mke-worker-2"])

    async def four() -> AttachedCluster | None:
        obj = await fetch(attach.store, "mke")
        return obj if obj.status.nodes == [*NODES, "mke-worker-2"] else None

    await eventually(four, timeout=5, what="the new node in status")
    kube.set_nodes([
        *NODES,
        {"metadata": {"name": "mke-worker-2"},
         "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
    ])

    async def not_ready() -> AttachedCluster | None:
        obj = await fetch(attach.store, "mke")
        return obj if reason(obj, ac.HEALTHY) == "False/NodesNotReady" else None

    obj = await eventually(not_ready, timeout=5, what="Healthy=False NodesNotReady")
    assert obj.status.ready_nodes == 3 and not obj.status.healthy
    assert message(obj, ac.HEALTHY) == "1 of 4 nodes not ready: mke-worker-2"
    assert reason(obj, cond.READY) == "False/NodesNotReady"


async def test_polls_at_the_interval_not_on_every_event(
    attach: Attach, kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    # Each probe writes status and each write comes back as an event: that must not
    # turn into a probe loop. With a 1 s interval, 2.5 s see at most a handful of probes.
    await attach.store.create(attached("mke", kube.url, kubeconfig_text(kube, tmp_path)))
    await ready(attach, "mke")
    start, t0 = len(kube.requests), time.monotonic()
    await eventually(lambda: len(kube.requests) >= start + 4, timeout=5, what="two polls")
    assert time.monotonic() - t0 >= 1.5, kube.requests[start:]


async def test_unreachable_then_recovered(
    attach: Attach, kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    await attach.store.create(attached("mke", kube.url, kubeconfig_text(kube, tmp_path)))
    await ready(attach, "mke")
    port = kube.port
    await kube.stop()

    async def down() -> AttachedCluster | None:
        obj = await fetch(attach.store, "mke")
        return obj if reason(obj, ac.HEALTHY) == "False/Unreachable" else None

    obj = await eventually(down, timeout=5, what="Healthy=False Unreachable")
    assert not obj.status.healthy and obj.status.phase == ac.PHASE_UNHEALTHY
    assert reason(obj, cond.READY) == "False/Unreachable"
    # The credentials were verified: only health is in question; the last view is kept.
    assert reason(obj, ac.CONNECTED) == "True/Verified"
    assert obj.status.nodes == NODES
    await kube.start(port=port)
    obj = await ready(attach, "mke")
    assert reason(obj, ac.HEALTHY) == "True/NodesReady" and obj.status.healthy


async def test_bad_kubeconfig_gets_a_clear_condition_and_a_fix_recovers(
    attach: Attach, kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    good = kubeconfig_text(kube, tmp_path)
    broken = good.replace(f"token: {TOKEN}", f"token: {TOKEN}: [")
    await attach.store.create(attached("mke", kube.url, broken))

    async def refused() -> AttachedCluster | None:
        obj = await fetch(attach.store, "mke")
        return obj if reason(obj, ac.CONNECTED) == "False/InvalidKubeconfig" else None

    obj = await eventually(refused, what="Connected=False InvalidKubeconfig")
    c = cond.get(obj.status, cond.READY)
    assert c is not None and c.status == "False" and c.reason == "InvalidKubeconfig"
    assert "not valid YAML" in c.message and "line " in c.message
    assert not leaks(msgspec.json.encode(obj.status), TOKEN)
    assert c.severity == "Error" and obj.status.phase == ac.PHASE_FAILED
    assert kube.requests == [], "nothing may be sent with an invalid kubeconfig"

    obj.spec.kubeconfig = good
    await attach.store.update(obj)
    await ready(attach, "mke")


async def test_wrong_credentials_are_unauthorized(
    attach: Attach, kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    wrong = kubeconfig_text(kube, tmp_path).replace(TOKEN, "tok-wrong-credentials-000")
    await attach.store.create(attached("mke", kube.url, wrong))

    async def unauthorized() -> AttachedCluster | None:
        obj = await fetch(attach.store, "mke")
        return obj if reason(obj, ac.HEALTHY) == "False/Unauthorized" else None

    obj = await eventually(unauthorized, what="Healthy=False Unauthorized")
    assert reason(obj, ac.CONNECTED) == "False/Unauthorized"
    assert reason(obj, cond.READY) == "False/Unauthorized"
    assert "rejected the credentials (401" in message(obj, ac.CONNECTED)


async def test_endpoint_mismatch(
    attach: Attach, kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    await attach.store.create(attached("mke", "https://other-mke.example.test:6443",
                                       kubeconfig_text(kube, tmp_path)))

    async def mismatch() -> AttachedCluster | None:
        obj = await fetch(attach.store, "mke")
        return obj if reason(obj, ac.CONNECTED) == "False/EndpointMismatch" else None

    await eventually(mismatch, what="Connected=False EndpointMismatch")
    assert kube.requests == []


async def test_detach_leaves_the_cluster_untouched(
    attach: Attach, kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    await attach.store.create(attached("mke", kube.url, kubeconfig_text(kube, tmp_path)))
    await ready(attach, "mke")
    nodes_before = json.dumps(kube.nodes, sort_keys=True)
    rv_before = kube.resource_version
    await attach.store.delete(AttachedCluster, "mke", "default")

    async def gone() -> bool:
        try:
            await fetch(attach.store, "mke")
        except NotFound:
            return True
        return False

    await eventually(gone, what="the AttachedCluster to be gone")
    seen = len(kube.requests)
    assert seen > 0
    assert {m for m, _ in kube.requests} == {"GET"}, "attaching and detaching only read"
    assert {p for _, p in kube.requests} == {"/version/", "/api/v1/nodes"}
    assert json.dumps(kube.nodes, sort_keys=True) == nodes_before
    assert kube.resource_version == rv_before
    # Forgotten: nothing is scheduled, and a late requeue of the key sends nothing.
    assert not attach.reconciler._schedule
    with pytest.raises(NotFound):
        await attach.reconciler.reconcile(Request("mke", "default"))
    assert len(kube.requests) == seen


async def test_only_this_region_is_reconciled(
    attach: Attach, kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    text = kubeconfig_text(kube, tmp_path)
    await attach.store.create(attached("elsewhere", kube.url, text, region="region-two"))
    await attach.store.create(attached("here", kube.url, text))
    await ready(attach, "here")
    await attach.controller.resync()
    await eventually(lambda: len(attach.controller.queue) == 0, what="queue drained")
    # Even asked directly (an event from a misrouted subject), another region's is skipped.
    assert await attach.reconciler.reconcile(Request("elsewhere", "default")) == Result()
    other = await fetch(attach.store, "elsewhere")
    assert other.status.conditions == [] and other.metadata.finalizers == []
    assert REGION != other.spec.region


async def test_secret_never_in_status_events_or_logs(
    nc: NATS, prefix: str, kube: FakeKubeApiServer, tmp_path: Path,
    all_logs: pytest.LogCaptureFixture,
) -> None:
    events: list[bytes] = []

    async def on_msg(msg) -> None:  # noqa: ANN001 - nats Msg
        events.append(msg.subject.encode() + b" " + msg.data)

    sub = await nc.subscribe(f"{prefix}.>", cb=on_msg)
    good = kubeconfig_text(kube, tmp_path)
    async with running(nc, prefix) as a:
        await a.store.create(attached("mke", kube.url, good))
        await ready(a, "mke")
        # Broken at the token, and then wrong: every failure path writes a message.
        obj = await fetch(a.store, "mke")
        obj.spec.kubeconfig = good.replace(f"token: {TOKEN}", f"token: {TOKEN}: [")
        obj = await a.store.update(obj)

        async def refused() -> AttachedCluster | None:
            o = await fetch(a.store, "mke")
            return o if reason(o, ac.CONNECTED) == "False/InvalidKubeconfig" else None

        obj = await eventually(refused, what="InvalidKubeconfig")
        assert not leaks(msgspec.json.encode(obj.status), TOKEN)
        obj.spec.kubeconfig = good.replace(TOKEN, TOKEN[::-1])
        await a.store.update(obj)

        async def unauthorized() -> AttachedCluster | None:
            o = await fetch(a.store, "mke")
            return o if reason(o, ac.CONNECTED) == "False/Unauthorized" else None

        obj = await eventually(unauthorized, what="Unauthorized")
        status = msgspec.json.encode(obj.status).decode()
        await a.store.delete(AttachedCluster, "mke", "default")
        await eventually(lambda: any(b".deleted" in e for e in events), what="deleted event")
    await sub.unsubscribe()
    assert events, "the bus carried events"
    for secret in (TOKEN, TOKEN[::-1]):
        assert not leaks(status, secret)
        assert not [e for e in events if leaks(e, secret)]
        leaked = [r for r in all_logs.records
                  if leaks(r.getMessage(), secret) or leaks(r.exc_text or "", secret)]
        assert not leaked, leaked
    assert any("attach" in r.name for r in all_logs.records), "the reconciler did log"


async def test_never_reached_is_not_connected_and_backs_off(
    attach: Attach, kube: FakeKubeApiServer, tmp_path: Path
) -> None:
    text = kubeconfig_text(kube, tmp_path)
    url = kube.url
    await kube.stop()
    await attach.store.create(attached("mke", url, text))

    async def down() -> AttachedCluster | None:
        obj = await fetch(attach.store, "mke")
        return obj if reason(obj, ac.HEALTHY) == "False/Unreachable" else None

    obj = await eventually(down, what="Healthy=False Unreachable")
    assert reason(obj, ac.CONNECTED) == "False/Unreachable"
    assert "is unreachable" in message(obj, ac.CONNECTED)
    # Retries back off: 0.2, 0.4, 0.8, then the 1.0 cap.
    await eventually(lambda: attach.reconciler._schedule[Request("mke", "default")].failures
                     >= 4, timeout=5, what="four failed probes")
    fresh = AttachedClusterReconciler(attach.store, backoff_initial=0.2, backoff_max=1.0)
    delays = [fresh._failed(Request("mke", "default"), obj) for _ in range(5)]
    assert delays == [0.2, 0.4, 0.8, 1.0, 1.0]
