"""The node launcher: the local region's stand-in for real servers booting.

A real node powered on by its BMC boots the provisioned image and cloud-init starts the
LCM agent with the machine's token. Here the "servers" are Redfish emulator systems, so
this service polls each BareMetalHost's system: while a host is claimed by a Machine
(``spec.consumer`` = the Machine uid) and its power is On, an LCM agent process runs for
it with the host's own node root folder (``<data>/nodes/<host>``); when the provider
powers it off or deprovisions it, the agent stops. An agent that dies while its host is
on is started again, and resumes from its journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from services.lcm.config import LCMSettings, load_secret
from services.lcm.tokens import machine_token
from services.local.redfish import ImageServer
from services.providers.baremetal.adapter import ADDRESSES_ANNOTATION
from shared.models import BareMetalHost, Machine
from shared.natsserver import die_with_parent
from shared.service import Parts, Runtime, main
from shared.store import Store
from shared.tasks import cancel_all, raise_if_cancelling

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
TOKEN_ENV = "CCLOUD_LCM_AGENT_TOKEN"
IMAGES = ("ubuntu-22.04",)
OWNER_FILE = ".machine-uid"  # in a node root: which machine's image is on this disk


@dataclass
class Node:
    host: str
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
        self,
        store: Store,
        *,
        region: str,
        data_dir: Path,
        lcm_endpoint: str,
        poll: float = POLL_SECONDS,
    ) -> None:
        self.store = store
        self.region = region
        self.data_dir = data_dir
        self.lcm_endpoint = lcm_endpoint
        self.poll = poll
        self.nodes: dict[str, Node] = {}
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

    async def power_state(self, host: BareMetalHost) -> str:
        assert self._http is not None
        try:
            async with self._http.get(system_url(host.spec.bmc.address)) as r:
                if r.status != 200:
                    return "Unknown"
                return (await r.json()).get("PowerState", "Unknown")
        except (aiohttp.ClientError, TimeoutError):
            return "Unknown"

    async def sync(self) -> None:
        hosts = [h for h in await self.store.list_all(BareMetalHost) if h.region() == self.region]
        machines = {m.metadata.uid: m for m in await self.store.list_all(Machine)}
        wanted: dict[str, tuple[BareMetalHost, Machine]] = {}
        for host in hosts:
            machine = machines.get(host.spec.consumer)
            if machine is not None and await self.power_state(host) == "On":
                wanted[host.metadata.name] = (host, machine)
        for name, node in list(self.nodes.items()):
            gone = name not in wanted or wanted[name][1].metadata.name != node.machine.split("/")[1]
            if gone or node.proc.returncode is not None:
                if node.proc.returncode is not None and not gone:
                    log.warning("agent of %s exited with %s; starting it again",
                                name, node.proc.returncode)
                await self._stop_agent(node)
                del self.nodes[name]
        for name, (host, machine) in wanted.items():
            if name not in self.nodes:
                self.nodes[name] = await self._start_agent(host, machine)

    async def _start_agent(self, host: BareMetalHost, machine: Machine) -> Node:
        name = host.metadata.name
        root = node_root(self.data_dir / "nodes" / name, machine.metadata.uid or "")
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        ip = host.metadata.annotations.get(ADDRESSES_ANNOTATION, "").split(",")[0].strip()
        token = machine_token(load_secret(self.data_dir), machine.metadata.uid or "")
        ref = f"{machine.metadata.namespace}/{machine.metadata.name}"
        argv = [sys.executable, "-m", "services.lcm.agent", "--endpoint", self.lcm_endpoint,
                "--machine", ref, "--root", str(root), "--hostname", name]
        if ip:
            argv += ["--ip", ip]
        logf = open(logs / f"agent-{name}.log", "ab")  # noqa: ASYNC230, SIM115 - child owns it
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, env={**os.environ, TOKEN_ENV: token}, stdout=logf,
                stderr=asyncio.subprocess.STDOUT, preexec_fn=die_with_parent,
            )
        finally:
            logf.close()
        log.info("host %s is on: agent for machine %s started (pid %d)", name, ref, proc.pid)
        return Node(host=name, machine=ref, proc=proc)

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
    lcm = LCMSettings.from_env()
    data = Path(rt.settings.data_dir)
    image_port = int(os.environ.get("CCLOUD_LOCAL_IMAGE_PORT", "8089"))
    launcher = NodeLauncher(rt.store, region=rt.settings.region, data_dir=data,
                            lcm_endpoint=f"http://{lcm.host}:{lcm.port}")
    return Parts(always=[_Images(data / "images", image_port)], leader=[launcher])


if __name__ == "__main__":
    main("nodes", build)
