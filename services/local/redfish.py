"""The sushy-tools Redfish emulator and an image server: the local region's "data center".

The emulator's fake driver keeps systems in its state folder, so hosts powered on before a
restart are still on after it. Power notices go to a port no one serves: nothing leaves
the machine. Both bind to 127.0.0.1 only.
"""

from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
ISO_BYTES = b"CD001 ccloud local boot image\n"


def fake_system(index: int, *, power: str = "Off") -> dict[str, Any]:
    """One emulated server: a fixed uuid and MAC per index, so restarts find the same hosts."""
    return {
        "uuid": f"00000000-0000-4000-8000-{index:012d}",
        "name": f"bm-{index}",
        "power_state": power,
        "external_notifier": False,
        "nics": [{"mac": f"52:54:00:00:00:{index:02x}", "ip": f"127.0.10.{10 + index}"}],
    }


def emulator_config(
    *, port: int, state_dir: Path, systems: list[dict[str, Any]], auth_file: Path | None = None
) -> str:
    lines = [
        "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'",
        f"SUSHY_EMULATOR_LISTEN_PORT = {port}",
        "SUSHY_EMULATOR_FAKE_DRIVER = True",
        f"SUSHY_EMULATOR_STATE_DIR = {str(state_dir)!r}",
        # Nobody listens on the discard port; systems have external_notifier False too.
        "EXTERNAL_NOTIFICATION_URL = 'http://127.0.0.1:9'",
        f"SUSHY_EMULATOR_FAKE_SYSTEMS = {systems!r}",
    ]
    if auth_file is not None:
        lines.append(f"SUSHY_EMULATOR_AUTH_FILE = {str(auth_file)!r}")
    return "\n".join(lines) + "\n"


def emulator_argv(config: Path) -> list[str]:
    return [str(VENV_BIN / "sushy-emulator"), "--config", str(config)]


def system_address(port: int, uuid: str) -> str:
    return f"redfish+http://127.0.0.1:{port}/redfish/v1/Systems/{uuid}"


def wait_http(url: str, *, timeout: float, proc: subprocess.Popen[bytes] | None = None,
              log: Path | None = None) -> None:
    """Block until ``url`` answers (any HTTP status), or raise with the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-2000:] if log else ""
            raise RuntimeError(f"{proc.args[0]} exited: {tail}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # answering, even if with 401
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass


class ImageServer:
    """Serves files from a folder (OS images for virtual media) on loopback."""

    def __init__(self, root: Path, *, port: int = 0) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def add(self, name: str, data: bytes = ISO_BYTES) -> str:
        (self.root / name).write_bytes(data)
        return f"{self.url}/{name}"

    def start(self) -> ImageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
