"""The node launcher: the local region's stand-in for real servers booting.

A real server powered on by its BMC boots the provisioned image; cloud-init reads the
config drive in the BMC's removable virtual media (``services.providers.baremetal.
configdrive``), writes the LCM agent's env file, CA and unit, and systemd starts the
agent. Here the "servers" are Redfish emulator systems, so this service plays the server:
it polls each BareMetalHost's system over Redfish, and while one is powered on with a
config drive inserted it fetches the drive from the URL the BMC was given, writes the
drive's files into the node's root folder (``<data>/nodes/<host>``) and runs the agent as
the unit would, with what the drive says - endpoint, Machine, token, CA - and nothing
else: no store read, no secret. When the host is powered off or its drive ejected the
agent stops; an agent that dies while its host is on is started again, and resumes from
its journal. A host powered on without a drive starts nothing (as a real one would boot
without an agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from services.local.redfish import ImageServer
from services.providers.agent_bootstrap import AGENT_CA_ENV, ENV_FILE
from services.providers.baremetal import configdrive
from services.providers.baremetal.adapter import ADDRESSES_ANNOTATION
from shared.models import BareMetalHost
from shared.natsserver import die_with_parent
from shared.service import Parts, Runtime, main
from shared.store import Store
from shared.tasks import cancel_all, raise_if_cancelling

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
IMAGES = ("ubuntu-22.04",)
OWNER_FILE = ".machine-uid"  # in a node root: which machine's image is on this disk
REMOVABLE = {"USBStick", "Floppy"}  # where the provider inserts config drives


class DriveError(Exception):
    """A config drive the node cannot boot its agent from (said once per drive)."""


@dataclass(frozen=True)
class Boot:
    """What a node's config drive gives it: the agent's settings and the files to write."""

    instance_id: str
    hostname: str
    env: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)  # path -> content

    @classmethod
    def from_drive(cls, data: bytes) -> Boot:
        try:
            drive = configdrive.read(data)
            meta = yaml.safe_load(drive[configdrive.META_DATA]) or {}
            user = yaml.safe_load(drive[configdrive.USER_DATA]) or {}
        except (configdrive.ConfigDriveError, yaml.YAMLError) as e:
            raise DriveError(str(e)) from None
        files = {str(f.get("path", "")): str(f.get("content", ""))
                 for f in user.get("write_files") or [] if isinstance(f, dict)}
        env = dict(line.split("=", 1) for line in files.get(ENV_FILE, "").splitlines()
                   if "=" in line)
        missing = [k for k in ("CCLOUD_LCM_AGENT_ENDPOINT", "CCLOUD_LCM_AGENT_MACHINE",
                               "CCLOUD_LCM_AGENT_TOKEN") if not env.get(k)]
        if missing or not meta.get("instance-id"):
            raise DriveError(f"config drive lacks {', '.join(missing) or 'instance-id'}")
        return cls(instance_id=str(meta["instance-id"]),
                   hostname=str(meta.get("local-hostname", "")), env=env, files=files)


@dataclass
class Node:
    host: str
    drive: str  # the config drive's URL this agent was started from
    machine: str  # namespace/name
    proc: asyncio.subprocess.Process


def system_url(bmc_address: str) -> str:
    """``redfish+http://h:p/redfish/v1/Systems/x`` -> ``http://h:p/redfish/v1/Systems/x``."""
    return bmc_address.split("+", 1)[1] if bmc_address.startswith("redfish+") else bmc_address


def node_root(root: Path, machine_uid: str) -> Path:
    """The host's disk for this machine: kept while the same machine owns the host (its
    agent resumes from its journal), blank when another machine gets it, as provisioning
    a real server writes a fresh image over whatever the last owner left."""
    owner = root / OWNER_FILE
    if root.exists() and (not owner.exists() or owner.read_text() != machine_uid):
        log.info("node root %s belonged to another machine: starting from a blank disk", root)
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    owner.write_text(machine_uid)
    return root


class NodeLauncher:
    def __init__(
        self, store: Store, *, region: str, data_dir: Path, poll: float = POLL_SECONDS
    ) -> None:
        self.store = store
        self.region = region
        self.data_dir = data_dir
        self.poll = poll
        self.nodes: dict[str, Node] = {}
        self._boots: dict[str, Boot] = {}  # drive URL -> what it says (drives never change)
        self._refused: set[str] = set()  # drive URLs already said to be unusable
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        self._task = asyncio.create_task(self._loop(), name="node-launcher")

    async def stop(self) -> None:
        if self._task:
            await cancel_all([self._task])
        for node in list(self.nodes.values()):
            await self._stop_agent(node)
        if self._http:
            await self._http.close()

    async def _loop(self) -> None:
        while True:
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                raise_if_cancelling()
                log.warning("node launcher pass failed: %s", e)
            raise_if_cancelling()
            await asyncio.sleep(self.poll)

    async def _json(self, url: str) -> dict[str, Any] | None:
        assert self._http is not None
        try:
            async with self._http.get(url) as r:
                return await r.json() if r.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def power_state(self, host: BareMetalHost) -> str:
        system = await self._json(system_url(host.spec.bmc.address))
        return (system or {}).get("PowerState", "Unknown")

    async def drive_url(self, host: BareMetalHost) -> str:
        """The URL of the config drive inserted in the host's removable media, or ""."""
        system = system_url(host.spec.bmc.address)
        root = system.split("/redfish/v1/", 1)[0]
        listing = await self._json(system + "/VirtualMedia") or {}
        for member in listing.get("Members") or []:
            media = await self._json(root + member.get("@odata.id", ""))
            if media and REMOVABLE & set(media.get("MediaTypes") or []):
                if media.get("Inserted") and media.get("Image"):
                    return str(media["Image"])
        return ""

    async def boot(self, url: str) -> Boot | None:
        """What the drive at ``url`` says, fetched as the BMC serves it to the host."""
        if (known := self._boots.get(url)) is not None:
            return known
        assert self._http is not None
        try:
            async with self._http.get(url) as r:
                if r.status != 200:
                    raise DriveError(f"fetching it answered HTTP {r.status}")
                found = Boot.from_drive(await r.read())
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("config drive %s unreachable: %s", url, e)
            return None
        except DriveError as e:
            if url not in self._refused:
                self._refused.add(url)
                log.warning("config drive %s: %s; no agent starts from it", url, e)
            return None
        self._boots[url] = found
        return found

    async def sync(self) -> None:
        hosts = [h for h in await self.store.list_all(BareMetalHost) if h.region() == self.region]
        wanted: dict[str, tuple[BareMetalHost, str, Boot]] = {}
        for host in hosts:
            if await self.power_state(host) != "On":
                continue
            url = await self.drive_url(host)
            if url and (found := await self.boot(url)) is not None:
                wanted[host.metadata.name] = (host, url, found)
        for name, node in list(self.nodes.items()):
            gone = name not in wanted or wanted[name][1] != node.drive
            if gone or node.proc.returncode is not None:
                if node.proc.returncode is not None and not gone:
                    log.warning("agent of %s exited with %s; starting it again",
                                name, node.proc.returncode)
                await self._stop_agent(node)
                del self.nodes[name]
        for name, (host, url, found) in wanted.items():
            if name not in self.nodes:
                self.nodes[name] = await self._start_agent(host, url, found)

    async def _start_agent(self, host: BareMetalHost, url: str, found: Boot) -> Node:
        """cloud-init's write_files into the node's root, then the agent as its unit runs
        it (rooted in that folder here)."""
        name = host.metadata.name
        root = node_root(self.data_dir / "nodes" / name, found.instance_id)
        for path, content in found.files.items():
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        env = dict(found.env)
        if ca := env.get(AGENT_CA_ENV):
            env[AGENT_CA_ENV] = str(root / ca.lstrip("/"))
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        ip = host.metadata.annotations.get(ADDRESSES_ANNOTATION, "").split(",")[0].strip()
        ref = env["CCLOUD_LCM_AGENT_MACHINE"]
        argv = [sys.executable, "-m", "services.lcm.agent",
                "--endpoint", env["CCLOUD_LCM_AGENT_ENDPOINT"], "--machine", ref,
                "--root", str(root), "--hostname", found.hostname or name]
        if ip:
            argv += ["--ip", ip]
        logf = open(logs / f"agent-{name}.log", "ab")  # noqa: ASYNC230, SIM115 - child owns it
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, env={**os.environ, **env}, stdout=logf,
                stderr=asyncio.subprocess.STDOUT, preexec_fn=die_with_parent,
            )
        finally:
            logf.close()
        log.info("host %s is on: agent for machine %s started from its config drive (pid %d)",
                 name, ref, proc.pid)
        return Node(host=name, drive=url, machine=ref, proc=proc)

    async def _stop_agent(self, node: Node) -> None:
        if node.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                node.proc.terminate()
            try:
                await asyncio.wait_for(node.proc.wait(), 10)
            except TimeoutError:
                node.proc.kill()
                await node.proc.wait()
            log.info("host %s is off: agent for %s stopped", node.host, node.machine)


class _Images:
    """Serves the boot images the bare-metal provider inserts as virtual media."""

    def __init__(self, root: Path, port: int) -> None:
        self.server = ImageServer(root, port=port)

    async def start(self) -> None:
        for image in IMAGES:
            self.server.add(f"{image}.iso")
        self.server.start()

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.stop)


async def build(rt: Runtime) -> Parts:
    data = Path(rt.settings.data_dir)
    image_port = int(os.environ.get("CCLOUD_LOCAL_IMAGE_PORT", "8089"))
    launcher = NodeLauncher(rt.store, region=rt.settings.region, data_dir=data)
    return Parts(always=[_Images(data / "images", image_port)], leader=[launcher])


if __name__ == "__main__":
    main("nodes", build)
