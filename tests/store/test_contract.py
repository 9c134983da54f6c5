"""The store contract (``shared.store.base``), run against every backend.

Each case runs on the embedded KV backend, on the Kubernetes backend against the fake API
server, and on a real cluster when ``KUBECONFIG`` is set (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator

import msgspec
import pytest

from shared.models import ObjectMeta, ValidationError, encode
from shared.models.kinds import (
    ClusterRelease,
    ClusterReleaseSpec,
    Machine,
    MachineSpec,
    Region,
    RegionSpec,
)
from shared.store import (
    AlreadyExists,
    Conflict,
    Gone,
    Invalid,
    NotFound,
    Store,
    StoreError,
    WatchEvent,
    prefetch,
)
from shared.store import kv as kv_backend
from tests.store.conftest import Backend

EVENT_TIMEOUT = 10.0


def machine(ns: str, name: str, *, labels: dict[str, str] | None = None,
            finalizers: list[str] | None = None, cluster: str = "c1") -> Machine:
    return Machine(
        metadata=ObjectMeta(name=name, namespace=ns, labels=labels or {},
                            finalizers=finalizers or []),
        spec=MachineSpec(cluster=cluster, region="local"),
    )


def replace_meta(obj, **changes):
    return msgspec.structs.replace(obj, metadata=msgspec.structs.replace(obj.metadata, **changes))


async def next_event(events: AsyncIterator[WatchEvent], what: str = "event") -> WatchEvent:
    try:
        return await asyncio.wait_for(events.__anext__(), EVENT_TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"no {what} within {EVENT_TIMEOUT}s") from None


async def no_event(events: AsyncIterator[WatchEvent], wait: float = 0.3) -> None:
    """Assert nothing more arrives (a bounded wait for an absence, not synchronisation)."""
    task = asyncio.ensure_future(events.__anext__())
    done, _ = await asyncio.wait({task}, timeout=wait)
    if done:
        raise AssertionError(f"unexpected event {task.result()!r}")
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, StopAsyncIteration):
        pass


def summary(ev: WatchEvent) -> tuple[str, str, str]:
    return ev.type, ev.object.metadata.name, ev.object.spec.cluster


# --- create / get -----------------------------------------------------------------------


async def _outside(coro):
    """Run ``coro`` as another writer would: in a task outside this reconcile's scope."""
    return await asyncio.get_running_loop().create_task(coro, context=contextvars.Context())


async def test_a_prefetched_read_serves_one_get_until_a_write(store: Store,
                                                              backend: Backend) -> None:
    ns = backend.namespace
    first = await store.create(machine(ns, "m1"))
    await store.create(machine(ns, "m2"))
    with prefetch.scope():
        prefetch.offer(first)
        newer = await _outside(store.update(replace_meta(first, labels={"v": "2"})))
        # The first get takes the offered read, as if it had happened a moment earlier...
        assert (await store.get(Machine, "m1", ns)).metadata.resource_version == \
            first.metadata.resource_version
        # ...and only that one: the next asks the store.
        assert await store.get(Machine, "m1", ns) == newer
        prefetch.offer(newer)
        # Any write in the scope drops what was offered: a reconcile reads back its writes.
        await store.update(replace_meta(newer, labels={"v": "3"}))
        assert (await store.get(Machine, "m1", ns)).metadata.labels == {"v": "3"}
        other = await store.get(Machine, "m2", ns)
        prefetch.offer(other)
        await _outside(store.update(replace_meta(other, labels={"v": "x"})))
        await store.delete(Machine, "m1", ns)
        assert (await store.get(Machine, "m2", ns)).metadata.labels == {"v": "x"}
    # Outside a scope nothing is kept.
    prefetch.offer(other)
    assert (await store.get(Machine, "m2", ns)).metadata.labels == {"v": "x"}


async def test_create_get_and_duplicate(backend: Backend, store: Store) -> None:
    ns = backend.namespace
    created = await store.create(machine(ns, "m1", labels={"a": "1"}))
    md = created.metadata
    assert md.uid and md.resource_version and md.creation_timestamp
    assert md.generation == 1 and md.deletion_timestamp is None
    got = await store.get(Machine, "m1", ns)
    assert got == created
    assert got.metadata.labels == {"a": "1"}
    with pytest.raises(AlreadyExists):
        await store.create(machine(ns, "m1"))
    with pytest.raises(NotFound):
        await store.get(Machine, "missing", ns)
    other = await store.create(machine(ns, "m2"))
    assert other.metadata.uid != md.uid
    assert int(other.metadata.resource_version) > int(md.resource_version)


async def test_create_ignores_status_and_rejects_resource_version(store: Store,
                                                                  backend: Backend) -> None:
    m = machine(backend.namespace, "m1")
    m.status.phase = "Ready"
    created = await store.create(m)
    assert created.status.phase == ""
    assert (await store.get(Machine, "m1", backend.namespace)).status.phase == ""
    with pytest.raises(Invalid):
        await store.create(replace_meta(machine(backend.namespace, "m2"), resource_version="5"))


async def test_namespaced_and_cluster_scoped(backend: Backend, store: Store) -> None:
    name = backend.cluster_name("r1")
    region = await store.create(Region(metadata=ObjectMeta(name=name),
                                       spec=RegionSpec(description="first")))
    assert region.metadata.namespace is None
    assert (await store.get(Region, name)).spec.description == "first"
    release = await store.create(ClusterRelease(
        metadata=ObjectMeta(name=backend.cluster_name("cr")),
        spec=ClusterReleaseSpec(version="1.0.0", mke_version="3.7.0"),
    ))
    assert release.metadata.namespace is None
    with pytest.raises(Invalid):
        await store.create(Region(metadata=ObjectMeta(name=backend.cluster_name("r2"),
                                                      namespace=backend.namespace)))
    with pytest.raises(Invalid):
        await store.create(machine("", "m1"))
    with pytest.raises(Invalid):
        await store.get(Machine, "m1")
    with pytest.raises(Invalid):
        await store.get(Region, name, backend.namespace)
    names = [r.metadata.name for r in (await store.list(Region)).items]
    assert name in names


# --- update semantics ----------------------------------------------------------------------


async def test_update_with_stale_resource_version_conflicts(store: Store,
                                                            backend: Backend) -> None:
    ns = backend.namespace
    first = await store.create(machine(ns, "m1"))
    second = await store.update(replace_meta(first, labels={"x": "1"}))
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    with pytest.raises(Conflict):
        await store.update(replace_meta(first, labels={"x": "2"}))
    with pytest.raises(Conflict):
        await store.update_status(first)
    assert (await store.get(Machine, "m1", ns)).metadata.labels == {"x": "1"}
    # No resourceVersion: an unconditional write of the latest version.
    third = await store.update(replace_meta(first, labels={"x": "3"}, resource_version=None))
    assert third.metadata.labels == {"x": "3"}
    with pytest.raises(NotFound):
        await store.update(machine(ns, "ghost"))


async def test_generation_bumps_on_spec_change_only(store: Store, backend: Backend) -> None:
    ns = backend.namespace
    obj = await store.create(machine(ns, "m1"))
    assert obj.metadata.generation == 1
    obj = await store.update(replace_meta(obj, labels={"l": "v"}, annotations={"a": "b"}))
    assert obj.metadata.generation == 1
    obj.status.phase = "Provisioning"
    obj = await store.update_status(obj)
    assert obj.metadata.generation == 1
    obj = await store.update(msgspec.structs.replace(
        obj, spec=msgspec.structs.replace(obj.spec, role="control-plane")))
    assert obj.metadata.generation == 2
    assert (await store.get(Machine, "m1", ns)).metadata.generation == 2


async def test_status_subresource_isolation(store: Store, backend: Backend) -> None:
    ns = backend.namespace
    obj = await store.create(machine(ns, "m1"))
    # A main-resource update keeps the stored status.
    changed = msgspec.structs.replace(obj, spec=msgspec.structs.replace(obj.spec, cluster="c2"))
    changed.status.phase = "Hacked"
    obj = await store.update(changed)
    assert obj.spec.cluster == "c2" and obj.status.phase == ""
    # A status update keeps the stored spec and metadata.
    sneaky = msgspec.structs.replace(obj, spec=msgspec.structs.replace(obj.spec, cluster="c3"))
    sneaky = replace_meta(sneaky, labels={"sneaky": "yes"})
    sneaky.status.phase = "Ready"
    sneaky.status.node_name = "node-1"
    obj = await store.update_status(sneaky)
    stored = await store.get(Machine, "m1", ns)
    for got in (obj, stored):
        assert got.status.phase == "Ready" and got.status.node_name == "node-1"
        assert got.spec.cluster == "c2"
        assert got.metadata.labels == {}
        assert got.metadata.generation == 2


async def test_patch_status_merges_into_the_status_only(store: Store, backend: Backend) -> None:
    ns = backend.namespace
    obj = await store.create(machine(ns, "m1", labels={"tier": "web"}))
    obj.status.phase = "Provisioning"
    obj.status.node_name = "node-1"
    obj.status.addresses = ["10.0.0.1", "10.0.0.2"]
    obj = await store.update_status(obj)
    patched = await store.patch_status(Machine, "m1", ns, {
        "phase": "Ready", "providerId": "simulated:///m1",  # set
        "nodeName": None,  # null removes
        "addresses": ["10.0.0.9"],  # arrays are replaced whole
    })
    stored = await store.get(Machine, "m1", ns)
    for got in (patched, stored):
        assert got.status.phase == "Ready" and got.status.provider_id == "simulated:///m1"
        assert got.status.node_name == "" and got.status.addresses == ["10.0.0.9"]
        assert got.spec == obj.spec and got.metadata.labels == {"tier": "web"}
        assert got.metadata.generation == obj.metadata.generation == 1
        assert got.metadata.uid == obj.metadata.uid
    assert patched.metadata.resource_version == stored.metadata.resource_version
    assert patched.metadata.resource_version != obj.metadata.resource_version
    # A patch that changes nothing writes nothing.
    same = await store.patch_status(Machine, "m1", ns, {"phase": "Ready", "nodeName": None})
    assert same.metadata.resource_version == patched.metadata.resource_version
    # Cluster-scoped kinds too.
    name = backend.cluster_name("r1")
    await store.create(Region(metadata=ObjectMeta(name=name), spec=RegionSpec()))
    region = await store.patch_status(Region, name, None, {"phase": "Ready"})
    assert region.status.phase == "Ready" and region.metadata.generation == 1


async def test_concurrent_status_patches_of_different_fields_all_land(
    store: Store, backend: Backend
) -> None:
    ns = backend.namespace
    await store.create(machine(ns, "m1"))
    patches = [{"phase": "Ready"}, {"providerId": "p"}, {"nodeName": "n"},
               {"lcmPhase": "Deploy"}, {"observedGeneration": 1}]
    await asyncio.gather(*(store.patch_status(Machine, "m1", ns, p) for p in patches))
    st = (await store.get(Machine, "m1", ns)).status
    assert (st.phase, st.provider_id, st.node_name, st.lcm_phase, st.observed_generation) == (
        "Ready", "p", "n", "Deploy", 1)


async def test_patch_status_refusals_write_nothing(store: Store, backend: Backend) -> None:
    ns = backend.namespace
    with pytest.raises(NotFound):
        await store.patch_status(Machine, "ghost", ns, {"phase": "Ready"})
    obj = await store.create(machine(ns, "m1"))
    obj.status.phase = "Provisioning"
    obj = await store.update_status(obj)
    for bad, field in [
        ({"phase": 5}, "status.phase"),  # wrong type
        ({"conditions": [{"type": "Ready", "status": "Maybe"}]}, "status.conditions"),  # enum
        ({"conditions": [{"type": "Ready"}]}, "status.conditions"),  # required field missing
    ]:
        with pytest.raises(Invalid) as refused:
            await store.patch_status(Machine, "m1", ns, bad)
        assert field in str(refused.value), (bad, str(refused.value))
        assert any(c.get("field", "").startswith(field) for c in refused.value.causes), bad
    with pytest.raises(Invalid, match="JSON object"):
        await store.patch_status(Machine, "m1", ns, ["phase"])  # type: ignore[arg-type]
    stored = await store.get(Machine, "m1", ns)
    assert stored.metadata.resource_version == obj.metadata.resource_version
    assert stored.status == obj.status


# --- list --------------------------------------------------------------------------------

SELECTOR_CASES = [
    ("tier=web", {"web-a", "web-b"}),
    ("tier==web", {"web-a", "web-b"}),
    ("tier!=web", {"db", "bare"}),
    ("tier in (web,db)", {"web-a", "web-b", "db"}),
    ("tier notin (web)", {"db", "bare"}),
    ("zone", {"web-a", "db"}),
    ("!zone", {"web-b", "bare"}),
    ("tier=web,zone=z1", {"web-a"}),
    ("tier in (web), !zone", {"web-b"}),
    ("", {"web-a", "web-b", "db", "bare"}),
]


async def test_list_label_selectors(store: Store, backend: Backend) -> None:
    ns = backend.namespace
    for name, labels in [
        ("web-a", {"tier": "web", "zone": "z1"}),
        ("web-b", {"tier": "web"}),
        ("db", {"tier": "db", "zone": "z2"}),
        ("bare", {}),
    ]:
        await store.create(machine(ns, name, labels=labels))
    for selector, expected in SELECTOR_CASES:
        page = await store.list(Machine, ns, label_selector=selector or None)
        assert {m.metadata.name for m in page.items} == expected, selector
        assert page.resource_version
    with pytest.raises(Invalid):
        await store.list(Machine, ns, label_selector="tier in (web")


async def test_list_all_with_a_predicate(store: Store, backend: Backend) -> None:
    ns = backend.namespace
    for name, labels in [("web-a", {"tier": "web"}), ("web-b", {"tier": "web"}), ("db", {})]:
        await store.create(machine(ns, name, labels=labels))
    found = await store.list_all(Machine, ns, label_selector="tier=web",
                                 where=lambda m: m.metadata.name.endswith("-b"))
    assert [m.metadata.name for m in found] == ["web-b"]
    found[0].status.phase = "Mine"  # a caller's copy, not the store's
    again = await store.list_all(Machine, ns, where=lambda m: m.metadata.name == "web-b")
    assert again[0].status.phase != "Mine"


async def test_a_shared_list_answers_as_a_copied_one(store: Store, backend: Backend) -> None:
    ns = backend.namespace
    for name in ("a", "b"):
        await store.create(machine(ns, name, labels={"tier": "web"}))
    b = await store.get(Machine, "b", ns)
    b.spec.role = "control-plane"
    await store.update(b)
    copied = await store.list_all(Machine, ns, label_selector="tier=web")
    shared = await store.list_all(Machine, ns, label_selector="tier=web", shared=True)
    assert [encode(m) for m in shared] == [encode(m) for m in copied]
    assert shared[1].spec.role == "control-plane" and shared[1].metadata.resource_version


async def test_list_paging_covers_every_item_once(store: Store, backend: Backend) -> None:
    ns = backend.namespace
    names = {f"m{i:02d}" for i in range(11)}
    for n in sorted(names):
        await store.create(machine(ns, n, labels={"page": "yes"}))
    await store.create(machine(ns, "other"))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = await store.list(Machine, ns, label_selector="page=yes", limit=4,
                                continue_token=token)
        pages += 1
        assert len(page.items) <= 4
        seen.extend(m.metadata.name for m in page.items)
        token = page.continue_token
        if not token:
            break
    assert pages == 3
    assert sorted(seen) == sorted(names) and len(seen) == len(names)
    assert {m.metadata.name for m in await store.list_all(Machine, ns)} == names | {"other"}


# --- delete ------------------------------------------------------------------------------


async def test_delete_without_finalizers(store: Store, backend: Backend) -> None:
    ns = backend.namespace
    obj = await store.create(machine(ns, "m1"))
    with pytest.raises(Conflict):
        await store.delete(Machine, "m1", ns, resource_version=str(
            int(obj.metadata.resource_version) + 1000))
    assert await store.delete(Machine, "m1", ns) is None
    with pytest.raises(NotFound):
        await store.get(Machine, "m1", ns)
    with pytest.raises(NotFound):
        await store.delete(Machine, "m1", ns)
    # The name is free again.
    again = await store.create(machine(ns, "m1"))
    assert again.metadata.uid != obj.metadata.uid


async def test_delete_with_finalizers(store: Store, backend: Backend) -> None:
    ns = backend.namespace
    await store.create(machine(ns, "m1", finalizers=["example.com/cleanup", "example.com/b"]))
    pending = await store.delete(Machine, "m1", ns)
    assert pending is not None and pending.deleting
    assert pending.metadata.finalizers == ["example.com/cleanup", "example.com/b"]
    stored = await store.get(Machine, "m1", ns)
    assert stored.deleting
    again = await store.delete(Machine, "m1", ns)
    assert again is not None
    assert again.metadata.deletion_timestamp == stored.metadata.deletion_timestamp
    # Removing one finalizer keeps it; removing the last one removes it.
    stored = await store.update(replace_meta(stored, finalizers=["example.com/b"]))
    assert (await store.get(Machine, "m1", ns)).deleting
    await store.update(replace_meta(stored, finalizers=[]))
    with pytest.raises(NotFound):
        await store.get(Machine, "m1", ns)


async def test_no_new_finalizers_while_deleting(store: Store, backend: Backend) -> None:
    ns = backend.namespace
    await store.create(machine(ns, "m1", finalizers=["a"]))
    pending = await store.delete(Machine, "m1", ns)
    assert pending is not None
    with pytest.raises(StoreError) as info:
        await store.update(replace_meta(pending, finalizers=["a", "b"]))
    assert isinstance(info.value, Invalid)


# --- watch -------------------------------------------------------------------------------


async def test_watch_from_version_sees_later_changes_in_order(store: Store,
                                                              backend: Backend) -> None:
    ns = backend.namespace
    before = await store.create(machine(ns, "early"))
    start = before.metadata.resource_version
    events = store.watch(Machine, ns, resource_version=start)
    try:
        got = []
        a = await store.create(machine(ns, "a"))
        got.append(await next_event(events))
        a = await store.update(msgspec.structs.replace(
            a, spec=msgspec.structs.replace(a.spec, cluster="c2")))
        got.append(await next_event(events))
        await store.create(machine(ns, "b"))
        got.append(await next_event(events))
        assert await store.delete(Machine, "a", ns) is None
        got.append(await next_event(events))
        assert [summary(e) for e in got] == [
            ("ADDED", "a", "c1"),
            ("MODIFIED", "a", "c2"),
            ("ADDED", "b", "c1"),
            ("DELETED", "a", "c2"),  # DELETED carries the last state
        ]
        versions = [int(e.object.metadata.resource_version) for e in got]
        assert versions == sorted(versions) and versions[0] > int(start)
        await no_event(events)
    finally:
        await events.aclose()


async def test_watch_from_older_version_replays_what_followed(store: Store,
                                                              backend: Backend) -> None:
    """Every change since the version, in order: exactly (Kubernetes keeps a history) or,
    where the backend keeps only the latest value per object (KV), each changed object's
    final state once, in the order of those final writes."""
    ns = backend.namespace
    start = (await store.create(machine(ns, "early"))).metadata.resource_version
    a = await store.create(machine(ns, "a"))
    await store.update(msgspec.structs.replace(
        a, spec=msgspec.structs.replace(a.spec, cluster="c2")))
    await store.create(machine(ns, "b"))
    assert await store.delete(Machine, "a", ns) is None
    if backend.exact_history:
        expected = [("ADDED", "a", "c1"), ("MODIFIED", "a", "c2"), ("ADDED", "b", "c1"),
                    ("DELETED", "a", "c2")]
    else:
        expected = [("ADDED", "b", "c1"), ("DELETED", "a", "c2")]
    events = store.watch(Machine, ns, resource_version=start)
    try:
        got = [summary(await next_event(events)) for _ in expected]
        assert got == expected
        await no_event(events)
    finally:
        await events.aclose()


async def test_watch_from_a_version_whose_history_is_gone_raises_gone(
    store: Store, backend: Backend
) -> None:
    """410 as Kubernetes does: one object rewritten more often than the backend keeps
    history for, so a change after ``start`` is gone; the watch fails before any event."""
    ns = backend.namespace
    if backend.name == "kube-real":
        pytest.skip("a real API server compacts on its own schedule")
    if "server" in backend.extra:  # the fake API server keeps as many events as etcd is told
        backend.extra["server"].set_history(kv_backend.HISTORY)
    start = (await store.create(machine(ns, "early"))).metadata.resource_version
    a = await store.create(machine(ns, "a"))
    versions = []
    for i in range(kv_backend.HISTORY + 1):
        a = await store.update(replace_meta(a, labels={"n": str(i)}))
        versions.append(a.metadata.resource_version)
    events = store.watch(Machine, ns, resource_version=start)
    try:
        with pytest.raises(Gone):
            await next_event(events)
    finally:
        await events.aclose()
    # A version inside the kept history still resumes, with exactly what followed it.
    events = store.watch(Machine, ns, resource_version=versions[-2])
    try:
        ev = await next_event(events)
        assert (ev.type, ev.object.metadata.labels) == ("MODIFIED", {"n": str(kv_backend.HISTORY)})
        await no_event(events)
    finally:
        await events.aclose()


async def test_watch_without_version_lists_current_objects_first(store: Store,
                                                                 backend: Backend) -> None:
    ns = backend.namespace
    for n in ("x", "y"):
        await store.create(machine(ns, n))
    events = store.watch(Machine, ns)
    try:
        first = {(await next_event(events)).object.metadata.name for _ in range(2)}
        assert first == {"x", "y"}
        await store.create(machine(ns, "z"))
        ev = await next_event(events)
        assert (ev.type, ev.object.metadata.name) == ("ADDED", "z")
    finally:
        await events.aclose()


async def test_watch_resume_after_disconnect_loses_nothing(store: Store,
                                                           backend: Backend) -> None:
    ns = backend.namespace
    start = (await store.create(machine(ns, "seed"))).metadata.resource_version
    events = store.watch(Machine, ns, resource_version=start)
    await store.create(machine(ns, "a"))
    await store.create(machine(ns, "b"))
    seen = [await next_event(events) for _ in range(2)]
    await events.aclose()  # the consumer goes away
    last = seen[-1].object.metadata.resource_version
    # Changes while nobody watches.
    await store.create(machine(ns, "c"))
    b = await store.get(Machine, "b", ns)
    await store.update(replace_meta(b, labels={"k": "v"}))
    await store.delete(Machine, "a", ns)
    resumed = store.watch(Machine, ns, resource_version=last)
    try:
        got = [await next_event(resumed) for _ in range(3)]
        assert [(e.type, e.object.metadata.name) for e in got] == [
            ("ADDED", "c"), ("MODIFIED", "b"), ("DELETED", "a"),
        ]
        assert got[1].object.metadata.labels == {"k": "v"}
        await no_event(resumed)
    finally:
        await resumed.aclose()


async def test_watch_finalizer_removal_ends_with_deleted(store: Store, backend: Backend) -> None:
    ns = backend.namespace
    obj = await store.create(machine(ns, "m1", finalizers=["f"]))
    events = store.watch(Machine, ns, resource_version=obj.metadata.resource_version)
    try:
        await store.delete(Machine, "m1", ns)
        ev = await next_event(events)
        assert ev.type == "MODIFIED" and ev.object.deleting
        await store.update(replace_meta(ev.object, finalizers=[]))
        # Kubernetes writes the update, then removes the object: MODIFIED may come first.
        ev = await next_event(events)
        if ev.type == "MODIFIED":
            ev = await next_event(events)
        assert ev.type == "DELETED"
        assert ev.object.metadata.finalizers == [] and ev.object.deleting
    finally:
        await events.aclose()


# --- validation ----------------------------------------------------------------------------


async def test_decoding_error_names_the_field_path(store: Store, backend: Backend) -> None:
    ns = backend.namespace
    bad = machine(ns, "bad", cluster="Not_A_Name")  # Structs validate at decode time only
    if backend.raw_create is None:
        # A real API server validates against the generated CRD schema on write.
        with pytest.raises(Invalid) as refused:
            await store.create(bad)
        assert "spec.cluster" in str(refused.value)
        return
    payload = msgspec.to_builtins(bad)
    await backend.raw_create(Machine, payload)
    with pytest.raises(ValidationError) as info:
        await store.get(Machine, "bad", ns)
    assert info.value.path == "$.spec.cluster"
    with pytest.raises(ValidationError) as listed:
        await store.list(Machine, ns)
    assert listed.value.path.endswith("spec.cluster")
