"""What every bench shares: a private nats-server, service processes, figures and tables.

Processes are started with ``die_with_parent`` so an interrupted bench never leaves
servers behind. Peak RSS comes from ``/proc/<pid>/status`` (``VmHWM``), read just before
a process is stopped. Latencies are ``time.perf_counter()`` differences across processes:
on Linux it is CLOCK_MONOTONIC, one clock for the whole machine.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shared.natsserver import NatsServer, die_with_parent, free_port

REPO = Path(__file__).resolve().parents[1]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (q in 0..100); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * 1000:.2f}"


def table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain text table, right-aligned numbers, for a terminal or a README."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [title, ""]
    for n, r in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a live process, in MiB (NaN if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


@dataclass
class Proc:
    """One child process of the bench, its log in the work directory."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with open(self.log, "ab") as logf:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, cwd=REPO, stdout=logf, stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        assert self.popen is not None
        self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Stack:
    """A nats-server plus the service processes of one bench run, in a temp directory."""

    prefix: str = "bench"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ccbench-")))
    nats: NatsServer | None = None
    procs: dict[str, Proc] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    api_port: int = 0

    def start_nats(self) -> NatsServer:
        self.nats = NatsServer(self.workdir / "nats", server_name="bench")
        self.nats.start()
        return self.nats

    @property
    def nats_url(self) -> str:
        assert self.nats is not None
        return self.nats.url

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "CCLOUD_NATS_URL": self.nats_url,
            "CCLOUD_PREFIX": self.prefix,
            "CCLOUD_REGION": "local",
            "CCLOUD_DATA_DIR": str(self.workdir / "data"),
            "CCLOUD_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def spawn(self, name: str, args: Sequence[str], **env: str) -> Proc:
        proc = Proc(name, [sys.executable, *args], self.env(**env),
                     self.workdir / f"{name}.log").start()
        self.procs[name] = proc
        return proc

    def tokens_file(self) -> Path:
        path = self.workdir / "tokens.yaml"
        if not path.exists():
            from services.api.auth import user_entry

            path.write_text(yaml.safe_dump({"users": [user_entry("bench", self.token,
                                                                  operator=True)]}))
        return path

    def start_api(self) -> Proc:
        self.api_port = free_port()
        return self.spawn("api", ["-m", "services.api", "--port", str(self.api_port),
                                  "--tokens-file", str(self.tokens_file()),
                                  "--audit-log", str(self.workdir / "audit.log")])

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def wait_http(self, url: str, timeout: float = 20.0) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs.values():
                if not p.alive():
                    raise RuntimeError(f"{p.name} exited early:\n{p.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status < 500:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{url} did not answer within {timeout}s")

    def cpu(self) -> dict[str, float]:
        """CPU s of every live process by name, nats-server included."""
        return {name: cpu for name, _, cpu in self.footprint()}

    def footprint(self) -> list[tuple[str, float, float]]:
        """(name, peak RSS MiB, CPU s) of every live process, nats-server included."""
        rows = []
        if self.nats and self.nats.proc:
            pid = self.nats.proc.pid
            rows.append(("nats-server", peak_rss_mb(pid), cpu_seconds(pid)))
        for p in self.procs.values():
            if p.alive():
                rows.append((p.name, peak_rss_mb(p.pid), cpu_seconds(p.pid)))
        return rows

    def stop(self) -> None:
        for p in reversed(list(self.procs.values())):
            p.stop()
        if self.nats:
            self.nats.stop()


def run_json(args: Sequence[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run a helper process (the load generator) to completion; its last stdout line is JSON."""
    out = subprocess.run([sys.executable, *args], env=env, cwd=REPO, capture_output=True,
                         timeout=timeout, preexec_fn=die_with_parent)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}):\n"
                           f"{out.stderr.decode(errors='replace')[-2000:]}")
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def machine_line() -> str:
    cpus = os.cpu_count()
    try:
        model = next(line.split(":", 1)[1].strip()
                     for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = "?"
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return (f"machine: {cpus} cores ({model}), python {sys.version.split()[0]}, "
            f"load average at the end {load}")


def probe_and_load(stack: Stack, name: str, probe: Sequence[str], load: Sequence[str], *,
                   timeout: float = 120.0, settle: float = 20.0
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start a probe process, wait until it is subscribed, run the load process to the end,
    then wait for the probe's summary. Returns (load summary, probe summary)."""
    ready = stack.workdir / f"{name}.ready"
    out = stack.workdir / f"{name}.json"
    ready.unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    proc = stack.spawn(f"probe-{name}", ["-m", "bench.probe", *probe, "--nats-url",
                                         stack.nats_url, "--ready", str(ready), "--out", str(out)])
    deadline = time.monotonic() + 30
    while not ready.exists():
        if not proc.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"probe {name} did not get ready:\n{proc.tail()}")
        time.sleep(0.05)
    load_result = run_json(["-m", "bench.loadgen", *load], stack.env(), timeout)
    assert proc.popen is not None
    try:
        proc.popen.wait(settle)  # it stops by itself once it has seen everything
    except subprocess.TimeoutExpired:
        proc.popen.terminate()  # some writes were refused: report what arrived
        try:
            proc.popen.wait(30)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
    if not out.exists():
        raise RuntimeError(f"probe {name} wrote no summary:\n{proc.tail()}")
    del stack.procs[proc.name]
    return load_result, json.loads(out.read_text())
