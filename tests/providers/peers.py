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
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any

import bcrypt

from services.local.redfish import (
    ImageServer,
    emulator_argv,
    emulator_config,
    fake_system,
    system_address,
    wait_http,
)
from shared.natsserver import free_port

__all__ = ["ImageServer", "SushyEmulator", "Vcsim", "fake_system", "free_port", "running"]

REPO = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent


def _wait_http(
    url: str, *, timeout: float, proc: subprocess.Popen[bytes], log: pathlib.Path
) -> None:
    wait_http(url, timeout=timeout, proc=proc, log=log)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
        return system_address(self.port, uuid)

    def start(self) -> SushyEmulator:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "emulator.conf"
        auth = None
        if self.users:
            auth = self.workdir / "htpasswd"
            auth.write_text(
                "".join(
                    f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}\n"
                    for u, p in self.users.items()
                )
            )
        text = emulator_config(
            port=self.port, state_dir=self.workdir / "state", systems=self.systems, auth_file=auth
        )
        conf.write_text(text)
        log = self.workdir / "emulator.log"
        self._proc = subprocess.Popen(
            emulator_argv(conf),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        _wait_http(f"{self.url}/redfish/v1", timeout=30, proc=self._proc, log=log)
        return self

    def stop(self) -> None:
        if self._proc:
            _stop(self._proc)


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
