"""Corrupted artifacts, interrupted and cancelled copies, bounded parallelism."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from services.release.mirror.copier import Progress, mirror_release
from services.release.mirror.layout import MirrorDir
from shared.models import ClusterRelease
from tests.fakes.upstream import UpstreamCDN
from tests.release.conftest import DEB_CONTAINERD, upstreams_of
from tests.waiting import eventually


def deb_path(upstream: UpstreamCDN, name: str) -> str:
    return next(p for p in upstream.files if f"/{name}_" in p)


def _files(root: Path, pattern: str) -> list[Path]:
    return list(root.rglob(pattern))


def _read(path: Path) -> bytes:
    return path.read_bytes()


async def test_corrupted_artifact_fails_alone(
    upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path
) -> None:
    deb = deb_path(upstream, "containerd.io")
    layer = upstream.images["mirantis/ucp"].manifests[upstream.images["mirantis/ucp"].tags["3.7.0"]]
    layer_digest = json.loads(layer[0])["layers"][1]["digest"]
    layer_url = f"/v2/mirantis/ucp/blobs/{layer_digest}"
    upstream.corrupt(deb)
    upstream.corrupt(layer_url)

    result = await mirror_release(release, upstreams_of(upstream), tmp_path)

    good = upstream.files[deb]
    bad = bytes([good[0] ^ 0xFF]) + good[1:]
    assert result.failures == {
        f"deb {DEB_CONTAINERD[0]}={DEB_CONTAINERD[1]}": (
            f"sha256 mismatch for {upstream.url}{deb}: expected "
            f"{hashlib.sha256(good).hexdigest()}, got {hashlib.sha256(bad).hexdigest()}"
        ),
        "image mirantis/ucp:3.7.0": result.failures["image mirantis/ucp:3.7.0"],
    }
    assert f"sha256 mismatch for {upstream.url}{layer_url}: expected {layer_digest[7:]}" in (
        result.failures["image mirantis/ucp:3.7.0"]
    )
    assert result.items_done == len(release.spec.artifacts) - 2
    # Nothing of the corrupt file is left behind, and no record makes it visible.
    assert not _files(tmp_path, "containerd.io_*")
    mirror = MirrorDir(tmp_path)
    assert mirror.read_record(release.spec.artifacts[0]) is None
    assert mirror.read_record(release.spec.artifacts[1]) is not None


async def test_corrupted_packages_index_is_rejected(
    upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path
) -> None:
    upstream.corrupt("/debian/dists/stable/main/binary-amd64/Packages")
    result = await mirror_release(release, upstreams_of(upstream), tmp_path)
    debs = {k: v for k, v in result.failures.items() if k.startswith("deb ")}
    assert set(result.failures) == set(debs) and len(debs) == 2
    for reason in debs.values():
        assert "main/binary-amd64/Packages (index listed in Release)" in reason
        assert reason.startswith("sha256 mismatch")


async def test_connection_dropped_midfile_resumes_with_range(
    upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path
) -> None:
    deb = deb_path(upstream, "containerd.io")
    upstream.truncate_once(deb)

    result = await mirror_release(release, upstreams_of(upstream), tmp_path)

    assert result.failures == {}
    gets = upstream.gets(deb)
    size = len(upstream.files[deb])
    assert [g.range for g in gets] == [None, f"bytes={size // 2}-"], gets
    assert _read(_files(tmp_path, "containerd.io_*.deb")[0]) == upstream.files[deb]
    assert not _files(tmp_path, "*.part")


async def test_cancelled_copy_resumes_without_refetching_finished_files(
    upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path
) -> None:
    deb = deb_path(upstream, "containerd.io")
    released = upstream.stall(deb)
    latest: list[Progress] = []
    task = asyncio.create_task(
        mirror_release(
            release, upstreams_of(upstream), tmp_path, on_progress=lambda p: latest.append(p)
        )
    )
    total = len(release.spec.artifacts)
    part = tmp_path / "debian" / (deb.removeprefix("/debian/") + ".part")
    await eventually(
        lambda: latest and latest[-1].items_done == total - 1, what="all other artifacts"
    )
    await eventually(lambda: part.exists() and part.stat().st_size > 0, what="a partial file")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    released.set()
    kept = part.stat().st_size
    assert 0 < kept < len(upstream.files[deb])
    first_run = len(upstream.requests)

    result = await mirror_release(release, upstreams_of(upstream), tmp_path)

    assert result.failures == {} and result.items_done == total
    second = upstream.requests[first_run:]
    assert {r.path for r in second} == {
        "/debian/dists/stable/Release",
        "/debian/dists/stable/InRelease",
        "/debian/dists/stable/Release.gpg",
        "/debian/dists/stable/main/binary-amd64/Packages",
        deb,
    }, "finished files must not be fetched again"
    assert [r.range for r in second if r.path == deb] == [f"bytes={kept}-"]
    assert _read(_files(tmp_path, "containerd.io_*.deb")[0]) == upstream.files[deb]


async def _stalled_concurrency(
    upstream: UpstreamCDN, release: ClusterRelease, mirror_dir: Path, parallelism: int
) -> int:
    """Stall every big file; count how many the copier has in flight at once."""
    paths = [
        p
        for p in upstream.files
        if p.endswith((".deb", ".tgz", ".tar.gz")) and "23.0.8" not in p and "0.14.3" not in p
    ]
    gates = [upstream.stall(p) for p in paths]
    task = asyncio.create_task(
        mirror_release(release, upstreams_of(upstream), mirror_dir, parallelism=parallelism)
    )
    expected = min(parallelism, len(paths))
    await eventually(
        lambda: sum(upstream.stalled[p].is_set() for p in paths) >= expected,
        what=f"{expected} stalled downloads",
    )
    await asyncio.sleep(0.3)  # give a (buggy) copier the chance to start more
    seen = sum(upstream.stalled[p].is_set() for p in paths)
    for gate in gates:
        gate.set()
    result = await task
    assert result.failures == {}
    return seen


async def test_parallelism_is_bounded(
    upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path
) -> None:
    assert await _stalled_concurrency(upstream, release, tmp_path / "a", 2) == 2
    assert upstream.max_inflight == 2
    assert await _stalled_concurrency(upstream, release, tmp_path / "b", 8) >= 4
