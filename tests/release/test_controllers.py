"""The release controllers on the real store and bus: mirror status, available upgrades."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client as NATS

from services.release.bundle import export_bundle, import_bundle
from services.release.controllers import (
    RELEASE_WATCHES,
    ArtifactMirrorReconciler,
    AvailableUpgradesReconciler,
)
from services.release.defaults import ensure_default_releases
from services.release.mirror.copier import mirror_release
from shared.models import (
    ArtifactMirror,
    ArtifactMirrorSpec,
    Cluster,
    ClusterRelease,
    ClusterSpec,
    KaaSRelease,
    ObjectMeta,
)
from shared.runtime import Controller, Request
from shared.runtime import conditions as cond
from shared.store import Store
from tests.fakes.upstream import UpstreamCDN
from tests.harness import Harness, system
from tests.release.conftest import DEB_CONTAINERD, upstreams_of
from tests.waiting import eventually


@pytest.fixture
async def harness(nc: NATS, prefix: str) -> AsyncIterator[Harness]:
    async with system(nc, prefix) as h:
        yield h


async def _mirror_controller(h: Harness, directory: Path, retry: float = 30) -> Controller:
    ctl = Controller(
        name="release-artifactmirror",
        kind=ArtifactMirror,
        reconciler=ArtifactMirrorReconciler(
            h.store, directory, progress_interval=0.05, retry_interval=retry
        ),
        store=h.store,
        bus=h.bus,
        region="local",
        workers=2,
    )
    await ctl.start()
    return ctl


async def _release_with_a_held_download(
    h: Harness, upstream: UpstreamCDN, release: ClusterRelease
) -> asyncio.Event:
    """Store ``release``; its containerd package is held upstream until the gate is set."""
    await h.store.create(release)
    return upstream.stall(next(p for p in upstream.files if f"/{DEB_CONTAINERD[0]}_" in p))


async def test_mirror_controller_reports_progress_then_ready(
    harness: Harness, upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path
) -> None:
    store = harness.store
    gate = await _release_with_a_held_download(harness, upstream, release)
    ctl = await _mirror_controller(harness, tmp_path)
    try:
        await store.create(
            ArtifactMirror(
                metadata=ObjectMeta(name="local-mke", namespace="default"),
                spec=ArtifactMirrorSpec(
                    region="local", release=release.metadata.name,
                    upstreams=upstreams_of(upstream), parallelism=2,
                ),
            )
        )

        async def get() -> ArtifactMirror:
            return await store.get(ArtifactMirror, "local-mke", "default")

        # While the big file is held upstream, status shows a copy in progress.
        async def in_progress() -> bool:
            st = (await get()).status
            return st.phase == "Mirroring" and st.items_done >= 1 and st.bytes_done > 0
        await eventually(in_progress, what="progress in status while copying")
        mid = (await get()).status
        assert mid.items_done < mid.items_total == len(release.spec.artifacts)
        assert not cond.is_true(mid, cond.READY)
        gate.set()

        async def ready() -> ArtifactMirror:
            m = await get()
            # Not yet: say where it stands, so a timeout shows it.
            assert cond.is_true(m.status, cond.READY), msgspec.json.encode(m.status).decode()
            return m
        done = await eventually(ready, what="mirror Ready")
        st = done.status
        assert st.phase == "Ready" and st.failures == []
        assert st.items_done == st.items_total and st.bytes_done == st.bytes_total > 0
        assert st.observed_generation == done.metadata.generation
    finally:
        await ctl.stop()


class _HeldProgressWrites:
    """The store, except that one progress write (phase Mirroring with items done) gets
    its reply a second late, and a cancellation meanwhile is lost: the write completes
    anyway, as Python 3.11's ``wait_for`` (in nats-py's request) returns a reply that
    raced the cancellation."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.held = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def update_status(self, obj: ArtifactMirror) -> ArtifactMirror:
        st = obj.status
        if st.phase == "Mirroring" and st.items_done > 0 and not self.held.is_set():
            self.held.set()
            try:
                async with asyncio.timeout(1.0):
                    await asyncio.Event().wait()
            except (asyncio.CancelledError, TimeoutError):
                pass  # a cancellation is lost; the reply arrives either way
        return await self._store.update_status(obj)


async def test_mirror_pass_finishes_when_a_progress_write_loses_its_cancellation(
    harness: Harness, upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path
) -> None:
    store = harness.store
    gate = await _release_with_a_held_download(harness, upstream, release)
    held = _HeldProgressWrites(store)
    reconciler = ArtifactMirrorReconciler(held, tmp_path, progress_interval=0.0)  # type: ignore[arg-type]
    await store.create(
        ArtifactMirror(
            metadata=ObjectMeta(name="m", namespace="default"),
            spec=ArtifactMirrorSpec(region="local", release=release.metadata.name,
                                    upstreams=upstreams_of(upstream)),
        )
    )
    run = asyncio.create_task(reconciler.reconcile(Request("m", "default")))
    try:
        await eventually(held.held.is_set, what="a progress write in flight")
        gate.set()  # the copy finishes while that write is still held
        await asyncio.wait_for(asyncio.shield(run), 15)
        m = await store.get(ArtifactMirror, "m", "default")
        assert m.status.phase == "Ready" and cond.is_true(m.status, cond.READY)
        assert m.status.items_done == m.status.items_total == len(release.spec.artifacts)
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run


async def test_mirror_controller_lists_failures(
    harness: Harness, upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path
) -> None:
    store = harness.store
    await store.create(release)
    deb = next(p for p in upstream.files if f"/{DEB_CONTAINERD[0]}_" in p)
    upstream.corrupt(deb)
    ctl = await _mirror_controller(harness, tmp_path)
    try:
        await store.create(
            ArtifactMirror(
                metadata=ObjectMeta(name="m", namespace="default"),
                spec=ArtifactMirrorSpec(
                    region="local", release=release.metadata.name,
                    upstreams=upstreams_of(upstream),
                ),
            )
        )

        async def failed() -> ArtifactMirror | None:
            m = await store.get(ArtifactMirror, "m", "default")
            return m if m.status.phase == "Failed" else None
        m = await eventually(failed, what="mirror Failed")
        assert [f.artifact for f in m.status.failures] == [f"deb {DEB_CONTAINERD[0]}=1.6.28-1"]
        assert m.status.failures[0].reason.startswith("sha256 mismatch for ")
        ready = cond.get(m.status, cond.READY)
        assert ready is not None and ready.status == "False"
        assert ready.message == (
            f"1 of {len(release.spec.artifacts)} artifacts of mke-3-7-0 failed; "
            "see status.failures"
        )
        assert m.status.items_done == len(release.spec.artifacts) - 1

        # A mirror naming a release that does not exist says so.
        await store.create(
            ArtifactMirror(
                metadata=ObjectMeta(name="ghost", namespace="default"),
                spec=ArtifactMirrorSpec(region="local", release="mke-0-0-0"),
            )
        )

        async def ghost() -> str:
            g = await store.get(ArtifactMirror, "ghost", "default")
            c = cond.get(g.status, cond.READY)
            return c.message if c else ""
        assert await eventually(ghost, what="ghost condition") == (
            "ClusterRelease mke-0-0-0 does not exist"
        )
    finally:
        await ctl.stop()


async def test_mirror_without_upstreams_is_ready_after_airgap_import(
    harness: Harness, upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path
) -> None:
    store = harness.store
    await store.create(release)
    # Connected side: mirror the release and export it.
    assert (await mirror_release(release, upstreams_of(upstream), tmp_path / "src")).failures == {}
    bundle = tmp_path / "release.tar"
    await asyncio.to_thread(export_bundle, release, tmp_path / "src", bundle)
    fetched = len(upstream.requests)

    # Air-gapped side: a mirror object with no upstreams fails until the bundle arrives...
    ctl = await _mirror_controller(harness, tmp_path / "airgap", retry=0.5)
    try:
        await store.create(
            ArtifactMirror(
                metadata=ObjectMeta(name="airgap", namespace="default"),
                spec=ArtifactMirrorSpec(region="local", release=release.metadata.name),
            )
        )

        async def get() -> ArtifactMirror:
            return await store.get(ArtifactMirror, "airgap", "default")

        async def failed() -> ArtifactMirror | None:
            m = await get()
            return m if m.status.phase == "Failed" else None
        before = (await eventually(failed, what="mirror Failed before the import")).status
        assert len(before.failures) == len(release.spec.artifacts)
        assert all("upstream configured" in f.reason for f in before.failures)

        # ...and becomes Ready on its next retry once the bundle is imported, untouched.
        await asyncio.to_thread(import_bundle, bundle, tmp_path / "airgap")

        async def ready() -> ArtifactMirror:
            m = await get()
            # On a timeout the last status (phase, failures, last attempt) says why.
            assert cond.is_true(m.status, cond.READY), msgspec.json.encode(m.status).decode()
            return m
        done = await eventually(ready, what="mirror Ready after the import")
        st = done.status
        assert st.phase == "Ready" and st.failures == []
        assert st.items_done == st.items_total == len(release.spec.artifacts)
        assert st.bytes_done == st.bytes_total > 0
        assert done.metadata.generation == 1
        assert len(upstream.requests) == fetched, "the air-gapped mirror reached upstream"
    finally:
        await ctl.stop()


async def test_available_upgrades_per_cluster(harness: Harness) -> None:
    store = harness.store
    assert len(await ensure_default_releases(store)) == 4
    assert await ensure_default_releases(store) == []  # idempotent, never overwrites
    ctl = Controller(
        name="release-upgrades",
        kind=Cluster,
        reconciler=AvailableUpgradesReconciler(store),
        store=store,
        bus=harness.bus,
        watches=list(RELEASE_WATCHES),
    )
    await ctl.start()
    try:
        for name, release in [("a", "mke-3-7-0"), ("b", "mke-3-7-1"), ("c", "mke-3-8-0")]:
            await store.create(
                Cluster(
                    metadata=ObjectMeta(name=name, namespace="default"),
                    spec=ClusterSpec(region="local", provider="simulated", release=release),
                )
            )

        async def upgrades() -> dict[str, list[str]]:
            return {
                c.metadata.name: c.status.available_upgrades
                for c in await store.list_all(Cluster, "default")
            }

        want = {"a": ["mke-3-7-1"], "b": ["mke-3-8-0"], "c": []}
        await eventually(lambda: _equal(upgrades(), want), what="available upgrades")

        # Another controller's status fields survive our writes.
        a = await store.get(Cluster, "a", "default")
        a.status.ready_machines = 3
        a.status.release = "mke-3-7-0"
        await store.update_status(a)

        # Widen the matrix: the release watch recomputes every cluster.
        kaas = (await store.list_all(KaaSRelease))[0]
        kaas.spec.supported_cluster_releases[0].available_upgrades = ["mke-3-7-1", "mke-3-8-0"]
        await store.update(kaas)
        want["a"] = ["mke-3-7-1", "mke-3-8-0"]
        await eventually(lambda: _equal(upgrades(), want), what="upgrades after KaaS change")
        a = await store.get(Cluster, "a", "default")
        assert a.status.ready_machines == 3 and a.status.release == "mke-3-7-0"
    finally:
        await ctl.stop()


async def _equal(got, want) -> bool:  # type: ignore[no-untyped-def]
    return await got == want
