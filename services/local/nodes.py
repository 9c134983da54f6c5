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

The simulated provider's nodes are played the same way: a simulated node keeps the
cloud-init user data it was made with in its record (``<prefix>-simulated-nodes``), as a
cloud keeps an instance's, and while the node is up (provisioned, powered on, not being
deleted) its agent runs from that data - the same files written, the same unit settings.
So a simulated cluster made in the local region becomes Ready like a bare-metal one; each
of its nodes is an agent process here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from services.local.redfish import ImageServer
from services.providers.agent_bootstrap import AGENT_CA_ENV, ENV_FILE
from services.providers.baremetal import configdrive
from services.providers.baremetal.adapter import ADDRESSES_ANNOTATION
from services.providers.simulated.adapter import phase
from services.providers.simulated.nodes import KVNodes, NodeTable, SimNode, nodes_bucket
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
        if not meta.get("instance-id"):
            raise DriveError("config drive lacks instance-id")
        return cls.from_user_data(user, instance_id=str(meta["instance-id"]),
                                  hostname=str(meta.get("local-hostname", "")))

    @classmethod
    def from_user_data(cls, user: Any, *, instance_id: str, hostname: str) -> Boot:
        """What cloud-init makes of the node's user data (parsed): the files it writes and
        the agent's settings in its env file."""
        if not isinstance(user, dict):
            raise DriveError("user data is not a cloud-config mapping")
        files = {str(f.get("path", "")): str(f.get("content", ""))
                 for f in user.get("write_files") or [] if isinstance(f, dict)}
        env = dict(line.split("=", 1) for line in files.get(ENV_FILE, "").splitlines()
                   if "=" in line)
        missing = [k for k in ("CCLOUD_LCM_AGENT_ENDPOINT", "CCLOUD_LCM_AGENT_MACHINE",
                               "CCLOUD_LCM_AGENT_TOKEN") if not env.get(k)]
        if missing:
            raise DriveError(f"user data lacks {', '.join(missing)}")
        return cls(instance_id=instance_id, hostname=hostname, env=env, files=files)


@dataclass
class Node:
    name: str  # the host's, or the simulated node's
    source: str  # what its boot data came from (a drive's URL, a simulated node's id)
    machine: str  # namespace/name
    proc: asyncio.subprocess.Process


@dataclass(frozen=True)
class Wanted:
    """A node that is on with boot data: its agent should run."""

    source: str
    boot: Boot
    ip: str


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
        self, store: Store, *, region: str, data_dir: Path, poll: float = POLL_SECONDS,
        simulated: NodeTable | None = None,
    ) -> None:
        self.store = store
        self.region = region
        self.data_dir = data_dir
        self.poll = poll
        self.simulated = simulated  # the simulated provider's nodes, to boot as well
        self.nodes: dict[str, Node] = {}
        # drive URL or simulated node id -> what its boot data says (it never changes)
        self._boots: dict[str, Boot] = {}
        self._refused: set[str] = set()  # sources already said to be unusable
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
            self._refuse(url, f"config drive {url}", e)
            return None
        self._boots[url] = found
        return found

    def _refuse(self, source: str, what: str, e: Exception) -> None:
        if source not in self._refused:
            self._refused.add(source)
            log.warning("%s: %s; no agent starts from it", what, e)

    def simulated_boot(self, node: SimNode) -> Boot | None:
        """What a simulated node's user data says, read from its record as cloud-init on
        a cloud's instance reads it from the metadata service."""
        if (known := self._boots.get(node.id)) is not None:
            return known
        try:
            found = Boot.from_user_data(yaml.safe_load(node.user_data), hostname=node.name,
                                        instance_id=node.machine_uid)
        except (yaml.YAMLError, DriveError) as e:
            self._refuse(node.id, f"simulated node {node.name}", e)
            return None
        self._boots[node.id] = found
        return found

    async def sync(self) -> None:
        hosts = [h for h in await self.store.list_all(BareMetalHost) if h.region() == self.region]
        wanted: dict[str, Wanted] = {}
        for host in hosts:
            if await self.power_state(host) != "On":
                continue
            url = await self.drive_url(host)
            if url and (found := await self.boot(url)) is not None:
                ip = host.metadata.annotations.get(ADDRESSES_ANNOTATION, "").split(",")[0]
                wanted[host.metadata.name] = Wanted(url, found, ip.strip())
        if self.simulated is not None:
            now = time.time()
            for sim in await self.simulated.all():
                if sim.user_data and phase(sim, now) == "Running" and (
                        found := self.simulated_boot(sim)) is not None:
                    wanted[sim.name] = Wanted(sim.id, found, next(iter(sim.addresses), ""))
        for name, node in list(self.nodes.items()):
            gone = name not in wanted or wanted[name].source != node.source
            if gone or node.proc.returncode is not None:
                if node.proc.returncode is not None and not gone:
                    log.warning("agent of %s exited with %s; starting it again",
                                name, node.proc.returncode)
                await self._stop_agent(node)
                del self.nodes[name]
        for name, want in wanted.items():
            if name not in self.nodes:
                self.nodes[name] = await self._start_agent(name, want)

    async def _start_agent(self, name: str, want: Wanted) -> Node:
        """cloud-init's write_files into the node's root, then the agent as its unit runs
        it (rooted in that folder here)."""
        found = want.boot
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
        ref = env["CCLOUD_LCM_AGENT_MACHINE"]
        argv = [sys.executable, "-m", "services.lcm.agent",
                "--endpoint", env["CCLOUD_LCM_AGENT_ENDPOINT"], "--machine", ref,
                "--root", str(root), "--hostname", found.hostname or name]
        if want.ip:
            argv += ["--ip", want.ip]
        logf = open(logs / f"agent-{name}.log", "ab")  # noqa: ASYNC230, SIM115 - child owns it
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, env={**os.environ, **env}, stdout=logf,
                stderr=asyncio.subprocess.STDOUT, preexec_fn=die_with_parent,
            )
        finally:
            logf.close()
        log.info("node %s is on: agent for machine %s started from its boot data (pid %d)",
                 name, ref, proc.pid)
        return Node(name=name, source=want.source, machine=ref, proc=proc)

    async def _stop_agent(self, node: Node) -> None:
        if node.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                node.proc.terminate()
            try:
                await asyncio.wait_for(node.proc.wait(), 10)
            except TimeoutError:
                node.proc.kill()
                await node.proc.wait()
            log.info("node %s is off: agent for %s stopped", node.name, node.machine)


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
    simulated = KVNodes(rt.nc, bucket=nodes_bucket(rt.settings.prefix))
    await simulated.start()
    launcher = NodeLauncher(rt.store, region=rt.settings.region, data_dir=data,
                            simulated=simulated)
    return Parts(always=[_Images(data / "images", image_port)], leader=[launcher])


if __name__ == "__main__":
    main("nodes", build)
