"""Drive ``ccloud up`` and ``ccctl`` as a user would: real processes, free loopback ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from shared.natsserver import free_port

REPO = Path(__file__).resolve().parents[2]
BANNER = "Press Ctrl-C to stop."


class Up:
    """One ``ccloud up`` process with its own data folder and ports."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.ports = {name: free_port() for name in
                      ("port", "nats-port", "lcm-port", "mirror-port", "redfish-port",
                       "image-port", "media-port")}
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    @property
    def config(self) -> Path:
        return self.data / "ccctl.yaml"

    def argv(self) -> list[str]:
        args = [sys.executable, "-c", "from services.local.cli import main; main()", "up",
                "--data", str(self.data)]
        for name, port in self.ports.items():
            args += [f"--{name}", str(port)]
        return args

    def start(self, timeout: float = 120.0) -> str:
        self.output = []
        self.proc = subprocess.Popen(self.argv(), cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        ready = threading.Event()

        def pump() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                self.output.append(line)
                if BANNER in line:
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("ccloud up did not come up:\n" + "".join(self.output))
        return "".join(self.output)

    def stop(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout)
        return code


def ctl(
    up: Up, *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CCLOUD_CONFIG": str(up.config)}
    res = subprocess.run([sys.executable, "-m", "services.cli.main", *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"ccctl {' '.join(args)} failed ({res.returncode}):\n"
                             f"{res.stdout}\n{res.stderr}")
    return res


def get_json(up: Up, *args: str) -> Any:
    return json.loads(ctl(up, "get", *args, "-o", "json").stdout)
