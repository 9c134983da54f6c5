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
import urllib.request
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


# client connection name -> (messages it sent nats-server, messages nats-server sent it)
Messages = dict[str, tuple[int, int]]


def messages_rows(messages: Messages, per: int, cpu: dict[str, float]) -> list[list[str]]:
    """Rows of a messages table: each client's messages sent and received per ``per`` (a
    write, a machine) and its process's CPU per message (``cpu``: CPU s by process over the
    same window; a connection named ``<process>-...`` is that process's), then the totals
    with nats-server's CPU per message."""
    def price(seconds: float | None, n: int) -> str:
        return f"{seconds / n * 1e6:.0f}" if seconds and n else "-"

    rows = []
    for name, (sent, got) in sorted(messages.items(), key=lambda kv: -sum(kv[1])):
        spent = next((c for p, c in cpu.items() if name == p or name.startswith(f"{p}-")),
                     None)
        rows.append([name, f"{sent / per:.2f}", f"{got / per:.2f}", price(spent, sent + got)])
    sent = sum(s for s, _ in messages.values())
    got = sum(g for _, g in messages.values())
    rows.append(["total (nats-server's CPU per message)", f"{sent / per:.2f}",
                 f"{got / per:.2f}", price(cpu.get("nats-server"), sent + got)])
    return rows


MESSAGES_HEADERS = ["client", "sent", "received", "us CPU per message"]


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
    monitor_port: int = 0  # nats-server's HTTP monitoring (loopback, as its client port)

    def start_nats(self) -> NatsServer:
        self.monitor_port = free_port()
        self.nats = NatsServer(self.workdir / "nats", server_name="bench",
                               extra_args=["-m", str(self.monitor_port)])
        self.nats.start()
        return self.nats

    def nats_messages(self, since: Messages | None = None) -> Messages:
        """Messages each client (by connection name) sent nats-server and was sent by it so
        far, from the server's ``/connz``, closed connections included (a probe that has
        exited): each is work for its sender, the server and its receiver. ``since``: only
        what came after that earlier reading, clients that sent and got nothing left out."""
        url = f"http://127.0.0.1:{self.monitor_port}/connz?state=all&limit=100000"
        with urllib.request.urlopen(url, timeout=10) as r:
            conns = json.load(r)["connections"]
        out: Messages = {}
        for c in conns:
            name = c.get("name") or "(unnamed)"
            sent, got = out.get(name, (0, 0))
            out[name] = (sent + c["in_msgs"], got + c["out_msgs"])
        if since is None:
            return out
        return {name: (sent - was[0], got - was[1]) for name, (sent, got) in out.items()
                for was in [since.get(name, (0, 0))] if (sent, got) != was}

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

    def cpu(self, since: dict[str, float] | None = None) -> dict[str, float]:
        """CPU s of every live process by name, nats-server included; ``since``: spent after
        that earlier reading."""
        since = since or {}
        return {name: cpu - since.get(name, 0.0) for name, _, cpu in self.footprint()}

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
