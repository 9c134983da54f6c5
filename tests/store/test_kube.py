"""Kubernetes backend specifics, and the fake API server's fidelity, via the real client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from shared.models import GROUP, VERSION, ObjectMeta
from shared.models.kinds import Machine, Region
from shared.store import Gone, Invalid, NotFound, StoreError, Unavailable
from shared.store.kube import KubeStore, clean, map_error
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.store.test_contract import machine, next_event, no_event, replace_meta

NS = "team-a"


@pytest.fixture
async def api_client(fake_kube: FakeKubeApiServer) -> AsyncIterator[client.ApiClient]:
    cfg = client.Configuration(host=fake_kube.url)
    async with client.ApiClient(configuration=cfg) as c:
        yield c


@pytest.fixture
async def kube(api_client: client.ApiClient) -> AsyncIterator[KubeStore]:
    store = KubeStore(api_client)
    await store.start()
    yield store
    await store.close()


async def test_watch_from_compacted_version_is_gone(
    fake_kube: FakeKubeApiServer, kube: KubeStore
) -> None:
    fake_kube.set_history(3)
    first = await kube.create(machine(NS, "m0"))
    for i in range(1, 6):
        await kube.create(machine(NS, f"m{i}"))
    events = kube.watch(Machine, NS, resource_version=first.metadata.resource_version)
    with pytest.raises(Gone) as info:
        await next_event(events)
    assert "too old resource version" in str(info.value)
    # A version inside the window still works.
    recent = str(fake_kube.resource_version - 2)
    events = kube.watch(Machine, NS, resource_version=recent)
    try:
        names = [(await next_event(events)).object.metadata.name for _ in range(2)]
        assert names == ["m4", "m5"]
    finally:
        await events.aclose()


async def test_gone_arriving_mid_stream(fake_kube: FakeKubeApiServer, kube: KubeStore) -> None:
    """The stream ends, the history is compacted meanwhile: resuming must raise Gone."""
    start = (await kube.create(machine(NS, "seed"))).metadata.resource_version
    events = kube.watch(Machine, NS, resource_version=start)
    try:
        await kube.create(machine(NS, "a"))
        assert (await next_event(events)).object.metadata.name == "a"
        fake_kube.set_history(1)
        await kube.create(machine(NS, "b"))
        await kube.create(machine(NS, "c"))
        assert (await next_event(events)).object.metadata.name == "b"
        assert (await next_event(events)).object.metadata.name == "c"
        fake_kube.drop_watches()
        fake_kube.compact()
        await kube.create(machine(NS, "d"))
        fake_kube.compact()
        with pytest.raises(Gone):
            await next_event(events)
    finally:
        await events.aclose()


async def test_watch_reconnects_when_the_server_ends_the_stream(
    fake_kube: FakeKubeApiServer, kube: KubeStore
) -> None:
    start = (await kube.create(machine(NS, "seed"))).metadata.resource_version
    events = kube.watch(Machine, NS, resource_version=start)
    try:
        await kube.create(machine(NS, "a"))
        assert (await next_event(events)).object.metadata.name == "a"
        fake_kube.drop_watches()
        await kube.create(machine(NS, "b"))
        await kube.create(machine(NS, "c"))
        names = [(await next_event(events)).object.metadata.name for _ in range(2)]
        assert names == ["b", "c"]
        await no_event(events)
    finally:
        await events.aclose()


async def test_expired_continue_token_is_gone(
    fake_kube: FakeKubeApiServer, kube: KubeStore
) -> None:
    for i in range(4):
        await kube.create(machine(NS, f"m{i}"))
    page = await kube.list(Machine, NS, limit=2)
    assert page.continue_token
    await kube.create(machine(NS, "late"))
    fake_kube.compact()
    with pytest.raises(Gone):
        await kube.list(Machine, NS, limit=2, continue_token=page.continue_token)
    with pytest.raises(Invalid):
        await kube.list(Machine, NS, limit=2, continue_token="not-a-token")


async def test_server_only_metadata_is_stripped(
    fake_kube: FakeKubeApiServer, api_client: client.ApiClient, kube: KubeStore
) -> None:
    await kube.create(machine(NS, "m1", finalizers=["f"]))
    api = client.CustomObjectsApi(api_client)
    raw = await api.get_namespaced_custom_object(GROUP, VERSION, NS, "machines", "m1")
    assert raw["metadata"]["managedFields"], "the fake adds managedFields like the real one"
    pending = await kube.delete(Machine, "m1", NS)
    raw = await api.get_namespaced_custom_object(GROUP, VERSION, NS, "machines", "m1")
    assert raw["metadata"]["deletionGracePeriodSeconds"] == 0
    assert pending is not None and pending.deleting
    assert pending.metadata.generation == 2  # the API server bumps it when marking
    raw["metadata"]["selfLink"] = "/apis/x"
    raw["extra"] = 1
    cleaned = clean(raw)
    assert set(cleaned["metadata"]) <= {
        "name", "namespace", "uid", "resourceVersion", "generation", "labels", "annotations",
        "finalizers", "ownerReferences", "creationTimestamp", "deletionTimestamp",
    }
    assert "extra" not in cleaned


async def test_kubeconfig_with_token(fake_kube: FakeKubeApiServer, tmp_path: Path) -> None:
    fake_kube.token = "t0ken"
    good = KubeStore(kubeconfig=fake_kube.kubeconfig(tmp_path / "good"))
    await good.start()
    try:
        region = await good.create(Region(metadata=ObjectMeta(name="r1")))
        assert region.metadata.uid
    finally:
        await good.close()
    fake_kube.token = "other"
    bad = KubeStore(kubeconfig=tmp_path / "good")
    await bad.start()
    try:
        with pytest.raises(StoreError) as info:
            await bad.get(Region, "r1")
        assert info.value.code == 401
        assert not isinstance(info.value, NotFound)
    finally:
        await bad.close()
    missing = KubeStore(kubeconfig=tmp_path / "nope")
    with pytest.raises(Unavailable):
        await missing.start()


async def test_default_kubeconfig_from_environment(
    fake_kube: FakeKubeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(fake_kube.kubeconfig(tmp_path / "env-kc")))
    store = KubeStore()
    await store.start()
    try:
        assert (await store.create(Region(metadata=ObjectMeta(name="r9")))).metadata.uid
    finally:
        await store.close()
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(Unavailable):
        await KubeStore().start()


async def test_unreachable_server_is_unavailable(tmp_path: Path) -> None:
    server = FakeKubeApiServer()
    await server.start()
    path = server.kubeconfig(tmp_path / "kc")
    await server.stop()
    store = KubeStore(kubeconfig=path)
    await store.start()
    try:
        with pytest.raises(Unavailable):
            await store.get(Region, "r1")
    finally:
        await store.close()


def test_error_mapping_by_status_reason() -> None:
    def status(code: int, reason: str) -> dict:
        return {"kind": "Status", "code": code, "reason": reason, "message": "m"}

    assert type(map_error(status(409, "AlreadyExists"))).__name__ == "AlreadyExists"
    assert type(map_error(status(409, "Conflict"))).__name__ == "Conflict"
    assert type(map_error(status(410, "Expired"))).__name__ == "Gone"
    assert type(map_error(status(422, "Invalid"))).__name__ == "Invalid"
    assert type(map_error(status(404, "NotFound"))).__name__ == "NotFound"
    assert type(map_error(status(503, "ServiceUnavailable"))).__name__ == "Unavailable"
    exc = ApiException(status=409, reason="Conflict")
    exc.body = json.dumps(status(409, "AlreadyExists"))
    assert type(map_error(exc)).__name__ == "AlreadyExists"


# --- fake fidelity through the raw client ---------------------------------------------------


async def test_fake_statuses_patches_and_discovery(
    fake_kube: FakeKubeApiServer, api_client: client.ApiClient, kube: KubeStore
) -> None:
    api = client.CustomObjectsApi(api_client)
    created = await kube.create(machine(NS, "m1"))
    # Update without resourceVersion is refused for custom resources.
    body = json.loads(json.dumps(
        await api.get_namespaced_custom_object(GROUP, VERSION, NS, "machines", "m1")))
    body["metadata"].pop("resourceVersion")
    with pytest.raises(ApiException) as info:
        await api.replace_namespaced_custom_object(GROUP, VERSION, NS, "machines", "m1", body)
    err = json.loads(info.value.body)
    assert (info.value.status, err["kind"], err["reason"]) == (422, "Status", "Invalid")
    # Merge patch: spec changes bump generation, status in the patch is ignored.
    out = await api.patch_namespaced_custom_object(
        GROUP, VERSION, NS, "machines", "m1",
        {"spec": {"role": "control-plane"}, "status": {"phase": "X"}},
        _content_type="application/merge-patch+json")
    assert out["spec"]["role"] == "control-plane" and out["metadata"]["generation"] == 2
    assert out.get("status", {}).get("phase") in (None, "")
    # JSON patch on the status subresource touches status only.
    out = await api.patch_namespaced_custom_object_status(
        GROUP, VERSION, NS, "machines", "m1",
        [{"op": "add", "path": "/status", "value": {"phase": "Ready"}},
         {"op": "replace", "path": "/spec/role", "value": "worker"}],
        _content_type="application/json-patch+json")
    assert out["status"]["phase"] == "Ready" and out["spec"]["role"] == "control-plane"
    # A cluster-scoped path for a namespaced kind's object does not exist.
    with pytest.raises(ApiException) as info:
        await api.get_cluster_custom_object(GROUP, VERSION, "machines", "m1")
    assert info.value.status == 404
    # Listing across namespaces works for namespaced kinds.
    await kube.create(machine("team-b", "m2"))
    everything = await kube.list(Machine)
    assert {(m.metadata.namespace, m.metadata.name) for m in everything.items} == {
        (NS, "m1"), ("team-b", "m2")}
    assert int(everything.resource_version) > int(created.metadata.resource_version)
    # Discovery and nodes.
    fake_kube.set_nodes(["node-1", "node-2"])
    nodes = await client.CoreV1Api(api_client).list_node()
    assert [n.metadata.name for n in nodes.items] == ["node-1", "node-2"]
    assert nodes.items[0].status.conditions[0].type == "Ready"
    version = await client.VersionApi(api_client).get_code()
    assert version.git_version == fake_kube.git_version
    groups = await client.ApisApi(api_client).get_api_versions()
    assert GROUP in [g.name for g in groups.groups]
    resources = await client.CustomObjectsApi(api_client).get_api_resources(GROUP, VERSION)
    assert "regions" in [r.name for r in resources.resources]


async def test_fake_merge_patch_on_status_subresource(
    fake_kube: FakeKubeApiServer, api_client: client.ApiClient, kube: KubeStore
) -> None:
    """What the real API server does with a merge patch on /status, and what the store's
    patch_status sends it."""
    api = client.CustomObjectsApi(api_client)
    created = await kube.create(machine(NS, "m1"))
    rv = int(created.metadata.resource_version)
    before = await api.get_namespaced_custom_object(GROUP, VERSION, NS, "machines", "m1")
    out = await api.patch_namespaced_custom_object_status(
        GROUP, VERSION, NS, "machines", "m1",
        {"spec": {"role": "control-plane"}, "metadata": {"labels": {"x": "y"}},
         "status": {"phase": "Ready", "notInSchema": 1}},
        _content_type="application/merge-patch+json")
    assert out["status"] == {"phase": "Ready"}  # unknown fields pruned
    assert out["spec"] == before["spec"] and "labels" not in out["metadata"]
    assert out["metadata"]["generation"] == 1 and int(out["metadata"]["resourceVersion"]) > rv
    with pytest.raises(ApiException) as info:
        await api.patch_namespaced_custom_object_status(
            GROUP, VERSION, NS, "machines", "m1", {"status": {"observedGeneration": "one"}},
            _content_type="application/merge-patch+json")
    err = json.loads(info.value.body)
    assert (info.value.status, err["reason"]) == (422, "Invalid")
    assert err["details"]["causes"][0]["field"] == "status.observedGeneration"
    # The store's patch_status is one merge-patch request on /status (no read first).
    fake_kube.requests.clear()
    await kube.patch_status(Machine, "m1", NS, {"nodeName": "n1"})
    assert fake_kube.requests == [
        ("PATCH", f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/machines/m1/status")]
    region = await kube.create(Region(metadata=ObjectMeta(name="r1")))
    fake_kube.requests.clear()
    patched = await kube.patch_status(Region, "r1", None, {"phase": "Ready"})
    assert fake_kube.requests == [("PATCH", f"/apis/{GROUP}/{VERSION}/regions/r1/status")]
    assert patched.status.phase == "Ready"
    assert patched.metadata.generation == region.metadata.generation


async def test_label_selector_transitions_in_watch(
    fake_kube: FakeKubeApiServer, api_client: client.ApiClient, kube: KubeStore
) -> None:
    """A watch with a selector sees objects enter (ADDED) and leave (DELETED) it."""
    api = client.CustomObjectsApi(api_client)
    start = (await kube.create(machine(NS, "m1"))).metadata.resource_version
    resp = await api.list_namespaced_custom_object(
        GROUP, VERSION, NS, "machines", watch=True, resource_version=start,
        label_selector="team=a", _preload_content=False)
    try:
        obj = await kube.get(Machine, "m1", NS)
        obj = await kube.update(replace_meta(obj, labels={"team": "a"}))
        await kube.update(replace_meta(obj, labels={"team": "b"}))
        types = [json.loads(await resp.content.readline())["type"] for _ in range(2)]
        assert types == ["ADDED", "DELETED"]
    finally:
        resp.release()
