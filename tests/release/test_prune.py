"""Pruning a regional mirror down to the releases in use: on real mirrored content (from the
fake upstream CDN), through the release service's pruner on the real store, and by hand."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from services.release.controllers.prune import MirrorGuard, MirrorPruner
from services.release.mirror import prune
from services.release.mirror.copier import mirror_release
from services.release.mirror.layout import MirrorDir
from shared.models import (
    Artifact,
    ArtifactMirror,
    ArtifactMirrorSpec,
    Cluster,
    ClusterRelease,
    ClusterSpec,
    ObjectMeta,
)
from tests.fakes.upstream import UpstreamCDN
from tests.harness import Harness, system
from tests.release.conftest import make_release, upstreams_of

LATER = 7200.0  # seconds: everything mirrored now is older than the default grace by then


def release_b() -> ClusterRelease:
    """Shares the debs and charts with make_release(), has its own ucp image."""
    b = make_release("rel-b")
    b.spec.artifacts = [a for a in b.spec.artifacts if a.type in ("deb", "helm")] + [
        Artifact(type="image", name="mirantis/ucp", version="3.6.0")]
    return b


@pytest.fixture
async def mirrored(upstream: UpstreamCDN, tmp_path: Path) -> tuple[MirrorDir, ClusterRelease,
                                                                  ClusterRelease]:
    a, b = make_release("rel-a"), release_b()
    for r in (a, b):
        result = await mirror_release(r, upstreams_of(upstream), tmp_path / "mirror")
        assert not result.failures, result.failures
    return MirrorDir(tmp_path / "mirror"), a, b


def held(mirror: MirrorDir) -> set[prune.Key]:
    return {prune.key(r) for r in mirror.records()}


def all_verified(mirror: MirrorDir) -> bool:
    return all(mirror.verified(f) for r in mirror.records() for f in r.files)


async def test_what_no_kept_release_needs_goes_and_shared_files_stay(mirrored) -> None:
    mirror, a, b = mirrored
    only_b = prune.wanted([b]) - prune.wanted([a])
    assert only_b == {("image", "mirantis/ucp", "3.6.0")}
    files_before = sum(1 for _ in mirror.root.rglob("*") if _.is_file())

    todo = prune.plan(mirror, prune.wanted([a]), now=time.time() + LATER)
    assert todo.names == ["image mirantis/ucp 3.6.0"] and todo.kept == len(a.spec.artifacts)
    assert todo.files and todo.bytes > 0
    assert sum(1 for _ in mirror.root.rglob("*") if _.is_file()) == files_before, "a plan only"
    prune.apply(mirror, todo)
    assert held(mirror) == prune.wanted([a])
    assert all_verified(mirror), "every file a kept record lists is still there, intact"
    assert not any(p.exists() for p in todo.files)

    # Nothing else to do; then keeping nothing empties the mirror, folders included.
    assert prune.plan(mirror, prune.wanted([a]), now=time.time() + LATER).files == []
    prune.apply(mirror, prune.plan(mirror, set(), now=time.time() + LATER))
    assert held(mirror) == set()
    for area in prune.AREAS:
        assert not any((mirror.root / area).rglob("*")), area


async def test_young_files_and_records_stay(mirrored) -> None:
    """A copy writes an artifact's files before its record: files that new may be about to
    be listed, so only what is older than the grace goes."""
    mirror, a, _ = mirrored
    todo = prune.plan(mirror, prune.wanted([a]))  # everything was written just now
    assert todo.records == [] and todo.files == []
    stale = mirror.root / "oci" / "blobs" / "sha256" / "deadbeef.part"
    stale.write_bytes(b"half a layer")
    fresh = mirror.root / "helm" / "charts" / "new-1.0.0.tgz.part"
    fresh.write_bytes(b"a download in progress")
    torn = mirror.root / "records" / "deb" / ".x.json.1234abcd.tmp"
    torn.write_bytes(b"{")
    unreadable = mirror.root / "records" / "helm" / "broken@1.json"
    unreadable.write_bytes(b"not json")
    hour_ago = time.time() - 2 * prune.DEFAULT_GRACE
    for p in (stale, torn, unreadable):
        os.utime(p, (hour_ago, hour_ago))
    todo = prune.plan(mirror, prune.wanted([a]))
    assert set(todo.files) == {stale, torn} and todo.records == [unreadable]
    prune.apply(mirror, todo)
    assert fresh.exists() and not stale.exists()


@pytest.fixture
async def h(nc: NATS, prefix: str) -> AsyncIterator[Harness]:
    async with system(nc, prefix) as harness:
        yield harness


def mirror_object(name: str, release: str, upstream: UpstreamCDN, region: str = "local"):
    return ArtifactMirror(metadata=ObjectMeta(name=name, namespace="default"),
                          spec=ArtifactMirrorSpec(region=region, release=release,
                                                  upstreams=upstreams_of(upstream)))


def cluster(name: str, release: str, region: str = "local") -> Cluster:
    return Cluster(metadata=ObjectMeta(name=name, namespace="default"),
                   spec=ClusterSpec(region=region, provider="simulated", release=release))


async def test_the_service_keeps_what_mirrors_and_clusters_of_its_region_use(
    h: Harness, mirrored, upstream: UpstreamCDN
) -> None:
    mirror, a, b = mirrored
    for r in (a, b):
        await h.store.create(r)
    pruner = MirrorPruner(h.store, mirror.root, region="local", interval=0,
                          guard=MirrorGuard(), grace=-LATER)
    # rel-b is named only by another region's mirror and cluster: not in use here.
    await h.store.create(mirror_object("m-a", "rel-a", upstream))
    await h.store.create(mirror_object("m-b", "rel-b", upstream, region="far"))
    await h.store.create(cluster("far", "rel-b", region="far"))
    await h.store.create(cluster("c", "rel-b"))  # ...but a cluster here runs it
    assert (await pruner.run_once()).records == []
    assert held(mirror) == prune.wanted([a, b])

    await h.store.delete(Cluster, "c", "default")
    done = await pruner.run_once()
    assert done is not None and done.names == ["image mirantis/ucp 3.6.0"]
    assert held(mirror) == prune.wanted([a]) and all_verified(mirror)

    # A release in use that cannot be read: nobody can tell what it needs, nothing goes.
    await h.store.create(cluster("ghost", "rel-missing"))
    await h.store.delete(ArtifactMirror, "m-a", "default")
    assert await pruner.run_once() is None
    assert held(mirror) == prune.wanted([a])


async def test_a_prune_pass_waits_for_copies_and_copies_wait_for_it() -> None:
    guard, order = MirrorGuard(), []
    copy_started, release_copy = asyncio.Event(), asyncio.Event()

    async def copy(name: str, hold: asyncio.Event | None = None) -> None:
        async with guard.copying():
            order.append(f"{name} start")
            copy_started.set()
            if hold is not None:
                await hold.wait()
            order.append(f"{name} end")

    async def prune_pass(inside: asyncio.Event) -> None:
        async with guard.pruning():
            order.append("prune start")
            inside.set()
            await asyncio.sleep(0)
            order.append("prune end")

    first = asyncio.create_task(copy("copy1", release_copy))
    await copy_started.wait()
    inside = asyncio.Event()
    pass_ = asyncio.create_task(prune_pass(inside))
    await asyncio.sleep(0)
    assert "prune start" not in order, "no pass while a copy runs"
    release_copy.set()
    await inside.wait()
    second = asyncio.create_task(copy("copy2"))
    await asyncio.gather(first, pass_, second)
    assert order == ["copy1 start", "copy1 end", "prune start", "prune end",
                     "copy2 start", "copy2 end"]


def test_pruning_by_hand(mirrored, capsys) -> None:
    mirror, a, _ = mirrored
    data = mirror.root.parent / "releases"
    data.mkdir()
    (data / "a.yaml").write_text(
        "apiVersion: kaas.containercloud.dev/v1alpha1\nkind: ClusterRelease\n"
        "metadata: {name: rel-a}\nspec: {version: 3.7.0, mkeVersion: 3.7.0, artifacts: ["
        + ", ".join(f"{{type: {x.type}, name: '{x.name}', version: '{x.version}'}}"
                    for x in a.spec.artifacts) + "]}\n")
    argv = ["--mirror", str(mirror.root), "--keep-release", "rel-a",
            "--release-data", str(data), "--grace", str(-LATER)]
    assert prune.main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove image mirantis/ucp 3.6.0" in out and "would remove 1 artifacts" in out
    assert ("image", "mirantis/ucp", "3.6.0") in held(mirror), "a dry run removes nothing"
    assert prune.main(argv) == 0
    assert held(mirror) == prune.wanted([a]) and all_verified(mirror)
    assert "removed 1 artifacts" in capsys.readouterr().out
    assert prune.main([*argv[:2], "--keep-release", "nope", "--release-data", str(data)]) == 1
    with pytest.raises(SystemExit) as e:
        prune.main(["--mirror", str(mirror.root)])
    assert e.value.code == 2
    assert "--keep-release" in capsys.readouterr().err
