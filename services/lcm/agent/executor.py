"""Executors apply one state item on a node; both understand the same runners.

Runners: ``host`` (point the package manager at the regional mirror), ``packages``
(install ``name=version`` Debian packages), ``images`` (pull container images), ``mke``
(join MKE as ``params.role`` through ``params.manager`` with the token ``params.tokenRef``
names, which the endpoint sends beside the details; with no manager, install MKE: this node
is the cluster's manager), ``helm`` (install charts), ``labels`` (set the node's
``params.labels`` and remove ``params.remove`` with kubectl), ``shell`` (run
``params.command``), ``file`` (write ``params.content`` to ``params.path``).

``NodeRootExecutor`` applies items into a directory standing for the node's filesystem, so
tests (and the local simulated default) can check exactly what was done; it also logs each
start/finish to ``var/log/ccloud/applied.log``. Control files under the root let tests
steer it: ``etc/ccloud/fail/<item>`` makes that item fail with the file's text,
``etc/ccloud/hold/<item>`` keeps it running until the file is removed, and
``etc/ccloud/fail/cordon`` / ``etc/ccloud/fail/uncordon`` make cordoning (with the drain) /
uncordoning the node fail the same way.

``HostExecutor`` runs the real commands on the host. Failures leave either executor only as
``ItemFailed`` with a message fit for status, with secret values masked.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from services.lcm.agent.files import open_for_write
from shared.models import StateItem

COMMAND_TIMEOUT = 1800.0
MKE_PORT = 443
MASK = "******"
NODE_LABELS_FILE = "etc/ccloud/node-labels"  # NodeRootExecutor: the node's labels, k=v lines


class ItemFailed(Exception):
    """An item could not be applied; the message goes to the LCMMachine status."""


class Executor(Protocol):
    def facts(self) -> tuple[str, str]:
        """(hostname, ip) of the node."""
        ...

    async def apply(
        self, item: StateItem, hash_: str, *, secrets: Mapping[str, str] | None = None
    ) -> None:
        """Apply ``item``; ``secrets`` resolves the references in its params."""
        ...

    async def cordon(self, on: bool) -> None: ...


def join_secret(item: StateItem, secrets: Mapping[str, str] | None) -> str:
    """The join token ``item`` references; ItemFailed if the endpoint did not send it."""
    ref = item.params.get("tokenRef", "")
    if not ref:
        return ""
    value = (secrets or {}).get(ref, "")
    if not value:
        raise ItemFailed(f"{item.name}: secret {ref!r} was not provided by the LCM endpoint")
    return value


def _pairs(value: str) -> list[tuple[str, str]]:
    out = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, _, version = part.partition("=")
        out.append((name, version))
    return out


class NodeRootExecutor:
    def __init__(self, root: Path, *, hostname: str = "", ip: str = "") -> None:
        self.root = root.resolve()
        self._hostname = hostname
        self._ip = ip

    def _path(self, rel: str) -> Path:
        # Every write resolves its path (symlinks included) and checks it stays inside the
        # root; on strings, as pathlib's resolve and parents cost a fleet of simulated
        # nodes a fifth of its time.
        root = str(self.root)
        real = os.path.realpath(os.path.join(root, rel.lstrip("/")))
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise ItemFailed(f"path {rel!r} leaves the node root")
        return Path(real)

    def _write(self, rel: str, text: str, *, mode: str = "w") -> None:
        with open_for_write(self._path(rel), mode) as f:
            f.write(text)

    def _log(self, line: str) -> None:
        self._write("var/log/ccloud/applied.log", f"{time.time():.3f} {line}\n", mode="a")

    def facts(self) -> tuple[str, str]:
        hostname = self._hostname
        if not hostname:
            f = self.root / "etc/hostname"
            hostname = f.read_text().strip() if f.exists() else self.root.name
        ip = self._ip
        if not ip:
            f = self.root / "etc/ccloud/ip"
            ip = f.read_text().strip() if f.exists() else "127.0.0.1"
        return hostname, ip

    async def apply(
        self, item: StateItem, hash_: str, *, secrets: Mapping[str, str] | None = None
    ) -> None:
        self._log(f"start {item.name} {item.version} {hash_}")
        fail = self.root / "etc/ccloud/fail" / item.name
        if fail.exists():
            raise ItemFailed(fail.read_text().strip() or f"{item.name} failed")
        hold = self.root / "etc/ccloud/hold" / item.name
        while hold.exists():  # noqa: ASYNC110 - a test holds the item by a file
            await asyncio.sleep(0.05)
        self._effect(item, secrets)
        self._write(f"etc/ccloud/items/{item.name}", f"{item.version} {hash_}\n")
        self._log(f"done {item.name} {item.version} {hash_}")

    def _effect(self, item: StateItem, secrets: Mapping[str, str] | None) -> None:
        p = item.params
        match item.runner:
            case "host":
                source = f"deb {p.get('mirror', '')}/debian stable main\n"
                self._write("etc/apt/sources.list.d/ccloud.list", source)
                self._write("etc/ccloud/release", f"{p.get('release', '')} {item.version}\n")
            case "packages":
                for name, version in _pairs(p.get("packages", "")):
                    self._write(f"var/lib/ccloud/packages/{name}", f"{version}\n")
            case "images":
                for name, version in _pairs(p.get("images", "")):
                    self._write(f"var/lib/ccloud/images/{name.replace('/', '_')}", f"{version}\n")
            case "mke":
                token = join_secret(item, secrets)
                self._write("etc/ccloud/mke", f"{p.get('role', 'worker')} {item.version}\n")
                self._write("etc/ccloud/mke-manager", f"{p.get('manager', '')}\n")
                if token:  # where a node keeps its join credential: owner-only
                    self._write("etc/ccloud/mke-join-token", token)
                    self._path("etc/ccloud/mke-join-token").chmod(0o600)
            case "helm":
                for name, version in _pairs(p.get("charts", "")):
                    self._write(f"var/lib/ccloud/charts/{name}", f"{version}\n")
            case "labels":
                path = self._path(NODE_LABELS_FILE)
                have = dict(_pairs(",".join(path.read_text().split()))) if path.exists() else {}
                for key in filter(None, p.get("remove", "").split(",")):
                    have.pop(key, None)
                have.update(_pairs(p.get("labels", "")))
                lines = (f"{k}={v}\n" for k, v in sorted(have.items()))
                self._write(NODE_LABELS_FILE, "".join(lines))
            case "shell":
                self._write("var/lib/ccloud/shell.log", p.get("command", "") + "\n", mode="a")
            case "file":
                if not p.get("path"):
                    raise ItemFailed(f"{item.name}: file runner needs params.path")
                self._write(p["path"], p.get("content", ""))
            case other:
                raise ItemFailed(f"{item.name}: unknown runner {other!r}")

    async def cordon(self, on: bool) -> None:
        what = "cordon" if on else "uncordon"
        fail = self.root / "etc/ccloud/fail" / what
        if fail.exists():
            self._log(f"{what}-failed")
            raise ItemFailed(fail.read_text().strip() or f"{what} failed")
        self._write("var/lib/ccloud/node-state", "cordoned\n" if on else "schedulable\n")
        self._log("cordon" if on else "uncordon")


def _with_port(address: str, port: int = MKE_PORT) -> str:
    """``host:port``, adding MKE's port when ``address`` names none (IPv6 bracketed)."""
    if address.startswith("[") and "]:" in address:
        return address
    if address.startswith("["):
        return f"{address}:{port}"
    if address.count(":") == 1:
        return address
    if ":" in address:  # a bare IPv6 address
        return f"[{address}]:{port}"
    return f"{address}:{port}"


def mke_join_command(
    *, version: str, role: str, manager: str, token: str, address: str = ""
) -> list[str]:
    """Join MKE as ``role`` through the manager at ``manager`` (host or host:port); with no
    manager, install it on this node - the cluster's manager - advertising ``address``."""
    if role not in ("manager", "worker"):
        raise ItemFailed(f"mke-join: unknown role {role!r} (manager or worker)")
    ucp = ["docker", "run", "--rm", "-v", "/var/run/docker.sock:/var/run/docker.sock",
           f"mirantis/ucp:{version}"]
    if not manager:
        if role == "worker":
            raise ItemFailed("mke-join: a worker needs a manager address to join through")
        return [*ucp, "install", *(["--host-address", address] if address else [])]
    if not token:
        raise ItemFailed("mke-join: no join token")
    return [*ucp, "join", "--role", role, "--manager", _with_port(manager), "--token", token]


def commands_for(
    item: StateItem, *, hostname: str = "", address: str = "",
    secrets: Mapping[str, str] | None = None,
) -> list[list[str]]:
    """The commands ``HostExecutor`` runs for ``item`` (pure, so it can be checked)."""
    p = item.params
    mirror = p.get("mirror", "")
    match item.runner:
        case "shell":
            return [["sh", "-c", p.get("command", "true")]]
        case "host":
            # The regional mirror regenerates its Release, so it is unsigned: trust it
            # explicitly (files are sha256-checked against upstream when mirrored).
            line = f"deb [trusted=yes] {mirror}/debian stable main"
            return [
                ["sh", "-c", f"echo '{line}' > /etc/apt/sources.list.d/ccloud.list"],
                ["apt-get", "update"],
            ]
        case "packages":
            pkgs = [f"{n}={v}" if v else n for n, v in _pairs(p.get("packages", ""))]
            return [["apt-get", "install", "-y", "--allow-downgrades", *pkgs]] if pkgs else []
        case "images":
            host = mirror.split("://", 1)[-1]
            plain = ["--plain-http"] if mirror.startswith("http://") else []
            return [["ctr", "-n", "k8s.io", "images", "pull", *plain, f"{host}/{n}:{v}"]
                    for n, v in _pairs(p.get("images", ""))]
        case "mke":
            return [mke_join_command(version=item.version, role=p.get("role", "worker"),
                                     manager=p.get("manager", ""), address=address,
                                     token=join_secret(item, secrets))]
        case "helm":
            return [["helm", "upgrade", "--install", n, f"{mirror}/helm/charts/{n}-{v}.tgz"]
                    for n, v in _pairs(p.get("charts", ""))]
        case "labels":
            changes = [f"{k}={v}" for k, v in _pairs(p.get("labels", ""))]
            changes += [f"{k}-" for k in filter(None, p.get("remove", "").split(","))]
            return [["kubectl", "label", "node", hostname, "--overwrite", *changes]] \
                if changes else []
        case "file":
            if not p.get("path"):
                raise ItemFailed(f"{item.name}: file runner needs params.path")
            return [["sh", "-c", 'printf %s "$1" > "$2"', "sh", p.get("content", ""), p["path"]]]
        case other:
            raise ItemFailed(f"{item.name}: unknown runner {other!r}")


class HostExecutor:
    """Runs each item's commands on this host, stopping at the first that fails."""

    def __init__(self, *, hostname: str = "", ip: str = "", timeout: float = COMMAND_TIMEOUT):
        self._hostname = hostname or socket.gethostname()
        self._ip = ip
        self.timeout = timeout

    def facts(self) -> tuple[str, str]:
        ip = self._ip
        if not ip:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.connect(("10.255.255.255", 1))
                    ip = s.getsockname()[0]
            except OSError:
                ip = "127.0.0.1"
        return self._hostname, ip

    async def _run(self, argv: list[str], *, hide: tuple[str, ...] = ()) -> None:
        """Run ``argv``; ``hide`` are secret values masked in any failure message."""
        try:
            await self._exec(argv)
        except ItemFailed as e:
            message = str(e)
            for value in filter(None, hide):
                message = message.replace(value, MASK)
            raise ItemFailed(message) from None

    async def _exec(self, argv: list[str]) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
        except OSError as e:
            raise ItemFailed(f"{argv[0]}: {e.strerror}") from None
        try:
            _, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ItemFailed(f"{argv[0]} timed out after {self.timeout:.0f}s") from None
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-3:]
            detail = "; ".join(tail) or "no output"
            raise ItemFailed(f"{argv[0]} exited with {proc.returncode}: {detail}")

    async def apply(
        self, item: StateItem, hash_: str, *, secrets: Mapping[str, str] | None = None
    ) -> None:
        hide = tuple((secrets or {}).values())
        address = self.facts()[1]
        for argv in commands_for(item, hostname=self._hostname, address=address,
                                 secrets=secrets):
            await self._run(argv, hide=hide)

    async def cordon(self, on: bool) -> None:
        if on:
            await self._run(["kubectl", "drain", self._hostname, "--ignore-daemonsets",
                             "--delete-emptydir-data", "--timeout=600s"])
        else:
            await self._run(["kubectl", "uncordon", self._hostname])
