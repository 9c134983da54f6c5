"""Where BMCs fetch config drives from: a folder of ISOs the provider serves over HTTP.

A drive's file name is the sha256 of its user data. The data carries the node's token, so
the name cannot be guessed without it; the same data keeps the same URL (inserting again
is a no-op) and changed data (a new endpoint or CA) gets a new one. The files live in the
provider's data folder: a restarted provider still serves what BMCs have inserted (real
BMCs read virtual media from the URL while the host runs, not once). A drive is withdrawn
when its host is deprovisioned.

``CCLOUD_BAREMETAL_MEDIA_HOST``/``_PORT`` is where the server listens;
``CCLOUD_BAREMETAL_MEDIA_URL`` the base URL as the BMCs reach it (their network is not
the cluster's: a NodePort or load balancer address), by default ``http://HOST:PORT``
unless HOST is a wildcard; without one, a node whose drive must be inserted waits with a
message saying so.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from services.providers.baremetal import configdrive
from services.providers.baremetal.bmc import PROVIDER
from services.providers.errors import InvalidSpecError
from shared.webserve import start_site

log = logging.getLogger(__name__)

HOST_ENV = "CCLOUD_BAREMETAL_MEDIA_HOST"
PORT_ENV = "CCLOUD_BAREMETAL_MEDIA_PORT"
URL_ENV = "CCLOUD_BAREMETAL_MEDIA_URL"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = "8436"
ROUTE = "/configdrive"
_NAME = re.compile(r"^[0-9a-f]{64}\.iso$")


class ConfigDrives:
    """The published drives: files under ``root``, URLs under ``base_url``."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = root
        self.base_url = base_url.rstrip("/") + ROUTE if base_url else ""

    def publish(self, user_data: str, *, instance_id: str, hostname: str) -> str:
        """The URL of this user data's drive, written (whole, 0600) unless it already is."""
        if not self.base_url:
            raise InvalidSpecError(
                f"the node needs a config drive but no URL its BMC can fetch it from is "
                f"configured: set {URL_ENV} on the bare-metal provider", provider=PROVIDER)
        name = hashlib.sha256(user_data.encode()).hexdigest() + ".iso"
        path = self.root / name
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            data = configdrive.build(user_data, instance_id=instance_id, hostname=hostname)
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            tmp.replace(path)
        return f"{self.base_url}/{name}"

    def owns(self, url: str) -> bool:
        return bool(self.base_url) and url.startswith(self.base_url + "/")

    def withdraw(self, url: str) -> None:
        """Stop serving the drive at ``url`` (one of ours; anything else is left alone)."""
        if self.owns(url) and (path := self.path(url.rsplit("/", 1)[1])) is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def path(self, name: str) -> Path | None:
        """The file for a served name, None for anything that is not one (no traversal)."""
        return self.root / name if _NAME.match(name) else None


class MediaServer:
    """Serves the drives to BMCs (GET and HEAD, ranges as BMCs read them)."""

    def __init__(self, drives: ConfigDrives, *, host: str, port: int) -> None:
        self.drives = drives
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def _get(self, request: web.Request) -> web.StreamResponse:
        path = self.drives.path(request.match_info["name"])
        if path is None or not path.is_file():
            raise web.HTTPNotFound(text="no such config drive\n")
        return web.FileResponse(path, headers={"Content-Type": "application/x-iso9660-image"})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(ROUTE + "/{name}", self._get)
        self._runner, self.port = await start_site(app, self.host, self.port)
        if not self.drives.base_url:
            log.warning("%s not set: nodes needing a config drive wait until it is", URL_ENV)
        log.info("config drives served on http://%s:%d%s, inserted as %s", self.host,
                 self.port, ROUTE, self.drives.base_url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass(frozen=True)
class MediaSettings:
    host: str
    port: int
    base_url: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> MediaSettings:
        env = dict(os.environ) if env is None else env
        host = env.get(HOST_ENV, DEFAULT_HOST) or DEFAULT_HOST
        raw = env.get(PORT_ENV, DEFAULT_PORT) or DEFAULT_PORT
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise SystemExit(f"invalid {PORT_ENV} {raw!r}: not a port number")
        base = env.get(URL_ENV, "")
        if not base and host not in ("0.0.0.0", "::"):  # noqa: S104 - a wildcard names no host
            base = f"http://{host}:{raw}"
        if base and not base.startswith(("http://", "https://")):
            raise SystemExit(f"invalid {URL_ENV} {base!r}: not an http(s) URL")
        return cls(host=host, port=int(raw), base_url=base)
