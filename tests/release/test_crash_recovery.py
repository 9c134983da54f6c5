"""A copy process killed with SIGKILL mid-file resumes on restart and fetches nothing twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
import yaml

from services.release.mirror.layout import MirrorDir
from shared.models import ClusterRelease
from shared.models.registry import to_dict
from tests.fakes.upstream import UpstreamCDN
from tests.release.conftest import DEB_CONTAINERD
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


async def _spawn(
    upstream: UpstreamCDN, release_file: Path, mirror: Path
) -> asyncio.subprocess.Process:
    """The copy CLI, as an operator (or a restarted pod) would run it."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.release.mirror", "--progress",
        "--release-file", str(release_file), "--mirror", str(mirror),
        "--debian", upstream.debian_url, "--helm", upstream.helm_url, "--oci", upstream.url,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def _lines(stream: asyncio.StreamReader, into: list[dict]) -> None:
    while line := await stream.readline():
        into.append(json.loads(line))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


async def test_sigkilled_copy_resumes_in_a_new_process(
    upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path
) -> None:
    release_file = tmp_path / "release.yaml"
    release_file.write_text(yaml.safe_dump(to_dict(release)))
    mirror = tmp_path / "mirror"
    deb = next(p for p in upstream.files if f"/{DEB_CONTAINERD[0]}_" in p)
    released = upstream.stall(deb)  # half of the biggest file, then the upstream waits
    part = mirror / (deb.removeprefix("/") + ".part")
    total = len(release.spec.artifacts)

    first = await _spawn(upstream, release_file, mirror)
    progress: list[dict] = []
    reader = asyncio.create_task(_lines(first.stdout, progress))  # type: ignore[arg-type]
    try:
        await eventually(lambda: progress and progress[-1]["items_done"] == total - 1,
                         timeout=30, what="every other artifact mirrored")
        await eventually(lambda: _size(part) > 0, what="a partial download on disk")
        first.send_signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
        released.set()
        await reader
    kept = _size(part)
    assert 0 < kept < len(upstream.files[deb])
    assert progress[-1]["failures"] == {}
    done_before = {r.path for r in upstream.requests} - {deb}

    mark = len(upstream.requests)
    second = await _spawn(upstream, release_file, mirror)
    out, err = await asyncio.wait_for(second.communicate(), 60)
    assert second.returncode == 0, err.decode()
    summary = json.loads(out.decode().splitlines()[-1])
    assert summary["failures"] == {} and summary["items_done"] == total
    assert summary["bytes_done"] == summary["bytes_total"] > 300_000

    # Only the indexes needed to resolve the unfinished deb were read again, and the deb
    # itself continued from the bytes the killed process had flushed.
    again = upstream.requests[mark:]
    refetched = {r.path for r in again} & done_before
    assert refetched <= {p for p in done_before if "/dists/" in p}, refetched
    assert [r.range for r in again if r.path == deb] == [f"bytes={kept}-"]

    # Everything verifies: each record's files are present with their sha256.
    m = MirrorDir(mirror)
    for artifact in release.spec.artifacts:
        record = m.read_record(artifact)
        assert record is not None and all(m.verified(f) for f in record.files), artifact
    assert (mirror / deb.removeprefix("/")).read_bytes() == upstream.files[deb]
    assert not part.exists()


def test_copy_cli_bad_release_is_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.release.mirror.__main__ import main

    code = main(["--release-file", str(tmp_path / "absent.yaml"), "--mirror", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "absent.yaml" in err and "Traceback" not in err
