"""Start and stop the real peers the provider tests talk to, on 127.0.0.1 only.

- ``SushyEmulator``: the sushy-tools Redfish emulator with its fake driver; power
  notifications are disabled per system and the notification URL points at a port no
  one serves, so nothing leaves the machine.
- ``ImageServer``: a tiny HTTP server the emulator downloads virtual-media images from.
- ``Vcsim``: builds (once, cached under ``var/vcsim``) and runs the govmomi vCenter
  simulator from ``tools/vcsim``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import bcrypt

REPO = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(
    url: str, *, timeout: float, proc: subprocess.Popen[bytes], log: pathlib.Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # answering, even if with 401
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fake_system(index: int, *, power: str = "Off") -> dict[str, Any]:
    return {
        "uuid": f"00000000-0000-4000-8000-{index:012d}",
        "name": f"bm-{index}",
        "power_state": power,
        "external_notifier": False,
        "nics": [{"mac": f"52:54:00:00:00:{index:02x}", "ip": f"192.0.2.{10 + index}"}],
    }


class SushyEmulator:
    def __init__(
        self,
        workdir: pathlib.Path,
        systems: list[dict[str, Any]],
        *,
        users: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.systems = systems
        self.users = users or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def system_address(self, uuid: str) -> str:
        return f"redfish+http://127.0.0.1:{self.port}/redfish/v1/Systems/{uuid}"

    def start(self) -> SushyEmulator:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "emulator.conf"
        lines = [
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'",
            f"SUSHY_EMULATOR_LISTEN_PORT = {self.port}",
            "SUSHY_EMULATOR_FAKE_DRIVER = True",
            f"SUSHY_EMULATOR_STATE_DIR = {str(self.workdir / 'state')!r}",
            # Nobody listens on the discard port; systems have external_notifier False too.
            "EXTERNAL_NOTIFICATION_URL = 'http://127.0.0.1:9'",
            f"SUSHY_EMULATOR_FAKE_SYSTEMS = {self.systems!r}",
        ]
        if self.users:
            auth = self.workdir / "htpasswd"
            auth.write_text(
                "".join(
                    f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}\n"
                    for u, p in self.users.items()
                )
            )
            lines.append(f"SUSHY_EMULATOR_AUTH_FILE = {str(auth)!r}")
        conf.write_text("\n".join(lines) + "\n")
        log = self.workdir / "emulator.log"
        self._proc = subprocess.Popen(
            [str(VENV_BIN / "sushy-emulator"), "--config", str(conf)],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        _wait_http(f"{self.url}/redfish/v1", timeout=30, proc=self._proc, log=log)
        return self

    def stop(self) -> None:
        if self._proc:
            _stop(self._proc)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass


class ImageServer:
    """Serves files from a directory (OS images for virtual media) on loopback."""

    def __init__(self, root: pathlib.Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def add(self, name: str, data: bytes = b"ISO9660 fake image\n") -> str:
        (self.root / name).write_bytes(data)
        return f"{self.url}/{name}"

    def start(self) -> ImageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


VCSIM_DIR = REPO / "var" / "vcsim"
VCSIM_BIN = VCSIM_DIR / "vcsim"
VCSIM_SRC = REPO / "tools" / "vcsim" / "main.go"
GOVMOMI_SRC = pathlib.Path("/usr/share/gocode/src/github.com/vmware/govmomi/simulator")


def build_vcsim() -> pathlib.Path:
    """Build the simulator once; later runs reuse the binary until main.go changes."""
    if VCSIM_BIN.exists() and VCSIM_BIN.stat().st_mtime >= VCSIM_SRC.stat().st_mtime:
        return VCSIM_BIN
    if not shutil.which("go") or not GOVMOMI_SRC.is_dir():
        raise RuntimeError(
            "the govmomi simulator needs golang-go and golang-github-vmware-govmomi-dev;"
            " run scripts/test-deps"
        )
    VCSIM_DIR.mkdir(parents=True, exist_ok=True)
    tmp = VCSIM_DIR / f"vcsim.{os.getpid()}"
    env = dict(
        os.environ,
        GOPATH="/usr/share/gocode",
        GO111MODULE="off",
        GOCACHE=str(VCSIM_DIR / "gocache"),
        GOFLAGS="",
    )
    subprocess.run(
        ["go", "build", "-o", str(tmp), "./tools/vcsim"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    tmp.replace(VCSIM_BIN)  # atomic: a concurrent build never leaves half a binary
    return VCSIM_BIN


class Vcsim:
    def __init__(self, workdir: pathlib.Path, *, username: str = "user", password: str = "pass"):
        self.workdir = workdir
        self.username = username
        self.password = password
        self.port = free_port()
        self.host = "127.0.0.1"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Vcsim:
        binary = build_vcsim()
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "vcsim.log"
        self._proc = subprocess.Popen(
            [
                str(binary),
                "-listen",
                f"127.0.0.1:{self.port}",
                "-username",
                self.username,
                "-password",
                self.password,
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        _wait_http(f"http://127.0.0.1:{self.port}/about", timeout=30, proc=self._proc, log=log)
        return self

    def stop(self) -> None:
        if self._proc:
            _stop(self._proc)


@contextlib.contextmanager
def running(peer: Any):  # noqa: ANN201
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()
