"""Two replicas of a service: only one leads; killing it (-9) hands over the lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from shared.config import Settings
from tests.waiting import eventually

LEASE = 1.5


def beats(path: Path) -> list[tuple[int, float]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        pid, t = line.split()
        out.append((int(pid), float(t)))
    return out


def spawn(beat_file: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.runtime.leader_replica", str(beat_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_leader_failover_after_kill(nats_server, prefix, tmp_path):
    settings = Settings(nats_url=nats_server.url, prefix=prefix, lease_seconds=LEASE)
    env = {**os.environ, **settings.to_env()}
    beat_file = tmp_path / "beats"
    a = spawn(beat_file, env)
    b = None
    try:
        await eventually(lambda: len(beats(beat_file)) >= 3, timeout=20, what="first leader")
        leader_pid = beats(beat_file)[0][0]
        assert leader_pid == a.pid
        b = spawn(beat_file, env)
        # While A lives and keeps renewing, B must stay a standby: A beats on, B never does.
        seen = len(beats(beat_file))
        await eventually(lambda: len(beats(beat_file)) >= seen + 3 * LEASE / 0.05,
                         timeout=20, what="A leading through several lease periods")
        assert {p for p, _ in beats(beat_file)} == {a.pid}

        a.send_signal(signal.SIGKILL)
        a.wait()
        await eventually(lambda: any(p == b.pid for p, _ in beats(beat_file)),
                         timeout=20, what="B taking over")
        log = beats(beat_file)
        last_a = max(t for p, t in log if p == a.pid)
        first_b = min(t for p, t in log if p == b.pid)
        assert first_b > last_a, "the two replicas led at the same time"
    finally:
        for p in (a, b):
            if p and p.poll() is None:
                p.terminate()
                p.wait(10)


async def test_graceful_stop_releases_the_lease_at_once(nats_server, prefix, tmp_path):
    settings = Settings(nats_url=nats_server.url, prefix=prefix, lease_seconds=30.0)
    env = {**os.environ, **settings.to_env()}
    beat_file = tmp_path / "beats"
    a = spawn(beat_file, env)
    b = None
    try:
        await eventually(lambda: len(beats(beat_file)) >= 2, timeout=20, what="A leading")
        b = spawn(beat_file, env)
        a.terminate()
        a.wait(10)
        # With a 30 s lease, B can only lead this soon if A released the lease on its way out.
        await eventually(lambda: any(p == b.pid for p, _ in beats(beat_file)),
                         timeout=15, what="B leading after A's clean stop")
    finally:
        for p in (a, b):
            if p and p.poll() is None:
                p.terminate()
                p.wait(10)
