"""A region for health-check tests: the real store and bus (nats-server), the LCM
controllers and agent endpoint, the simulated provider's Machine controller, and the fleet
of simulated agents (``bench.fleet``), in this process.

``NodeFleet`` plays the nodes: a node's agent runs while its simulated node is powered on.
A *hung* node (a kernel lockup, a wedged agent) stops reporting until it is power cycled; a
*broken* one stays silent even then, until the test repairs it. The provider's node table
is a ``PowerLog``, so a test sees every power change the provider asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from nats.aio.client import Client as NATS

from bench.fleet import Fleet
from services.lcm import service
from services.lcm.config import LCMSettings
from services.lcm.endpoint import Endpoint
from services.lcm.health import epoch
from services.providers.machines import MachineReconciler
from services.providers.simulated import SimulatedConfig, SimulatedProvider
from services.providers.simulated.adapter import settle
from services.providers.targets import SingleTarget
from services.release.defaults import ensure_default_releases
from shared.models import (
    REBOOT_REQUEST_ANNOTATION,
    Cluster,
    Machine,
    MachineHealthCheck,
    convert,
)
from shared.runtime import Controller, Request, Result
from shared.runtime import conditions as cond
from shared.store import NotFound
from shared.tasks import cancel_all
from tests.harness import Harness, system
from tests.providers.powerlog import PowerLog
from tests.waiting import eventually

NS = "default"
REGION = "local"
RELEASE = "mke-3-7-1"
SECRET = b"remediation-test-secret"


class NodeFleet(Fleet):
    """Agents that run only while their simulated node is on; see the module docstring."""

    def __init__(self, *args: Any, nodes: PowerLog, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.nodes = nodes
        self.hung: dict[str, int] = {}  # machine -> power-offs asked for when it hung
        self.broken: set[str] = set()

    async def reconcile(self, req: Request) -> Result | None:
        try:
            m = await self.store.get(Machine, req.name, req.namespace)
        except NotFound:
            await self.stop_agent(str(req))
            return None
        node = await self.nodes.get(m.metadata.uid or "")
        if node is None:
            return None
        if settle(node, time.time()).power != "On":
            await self.stop_agent(str(req))  # powered off: whatever ran there stopped
            return None
        offs = len(self.nodes.times(node.machine_uid, "Off"))
        if req.name in self.hung:
            if req.name in self.broken or offs <= self.hung[req.name]:
                return None  # still hung: no power cycle since
            del self.hung[req.name]
        return await super().reconcile(req)

    async def hang(self, name: str, *, broken: bool = False) -> None:
        m = await self.store.get(Machine, name, NS)
        self.hung[name] = len(self.nodes.times(m.metadata.uid or "", "Off"))
        if broken:
            self.broken.add(name)
        await self.stop_agent(f"{NS}/{name}")

    def repair(self, name: str) -> None:
        """Undo ``hang``: the agent starts again, no reboot needed."""
        self.hung.pop(name, None)
        self.broken.discard(name)
        if self.requeue is not None:
            self.requeue(Request(name, NS), 0.0)


@dataclass
class Region:
    h: Harness
    nodes: PowerLog
    fleet: NodeFleet
    controllers: list[Controller] = field(default_factory=list)

    @property
    def store(self):  # noqa: ANN201 - the harness KVStore
        return self.h.store

    async def machine(self, name: str) -> Machine:
        return await self.store.get(Machine, name, NS)

    async def check(self, name: str = "hc") -> MachineHealthCheck:
        return await self.store.get(MachineHealthCheck, name, NS)

    async def power(self, name: str) -> list[str]:
        """The power changes asked of the machine's node, after it was first powered on."""
        return self.nodes.of((await self.machine(name)).metadata.uid or "")[1:]

    async def off_times(self, name: str) -> list[float]:
        return self.nodes.times((await self.machine(name)).metadata.uid or "", "Off")

    async def create_cluster(self, name: str, *, workers: int) -> list[str]:
        cluster = await self.store.create(convert(Cluster, {
            "metadata": {"name": name, "namespace": NS},
            "spec": {"region": REGION, "provider": "simulated", "release": RELEASE}}))
        names = [f"{name}-cp0"] + [f"{name}-w{i}" for i in range(workers)]
        for n in names:
            await self.store.create(convert(Machine, {
                "metadata": {"name": n, "namespace": NS,
                             "ownerReferences": [msgspec.to_builtins(cluster.owner_ref())]},
                "spec": {"cluster": name, "region": REGION, "simulated": {},
                         "role": "control-plane" if "-cp" in n else "worker"}}))
        return names

    async def ready(self, cluster: str) -> bool:
        c = await self.store.get(Cluster, cluster, NS)
        st = c.status
        return (cond.is_true(st, "Ready") and st.release == RELEASE
                and st.ready_machines == st.total_machines > 0)

    async def deployed(self, cluster: str) -> None:
        await eventually(lambda: self.ready(cluster), timeout=60, interval=0.2,
                         what=f"cluster {cluster} Ready")

    async def create_check(self, cluster: str, name: str = "hc", **spec: Any) -> None:
        await self.store.create(convert(MachineHealthCheck, {
            "metadata": {"name": name, "namespace": NS},
            "spec": {"cluster": cluster, "region": REGION} | spec}))

    @contextlib.asynccontextmanager
    async def attempts(self, check: str = "hc") -> AsyncIterator[dict[str, float]]:
        """The reboot requests the check makes meanwhile (id -> when it made it): each is in
        a status write of the check before its annotation, so a watch sees every one."""
        seen: dict[str, float] = {}

        async def follow() -> None:
            async for ev in self.store.watch(MachineHealthCheck, NS):
                if ev.object.metadata.name == check:
                    for t in ev.object.status.targets:
                        seen.setdefault(t.request_id, epoch(t.last_attempt_time) or 0.0)

        task = asyncio.create_task(follow())
        try:
            yield seen
        finally:
            await cancel_all([task])

    async def machine_ready(self, name: str) -> bool:
        return cond.is_true((await self.machine(name)).status, "Ready")

    async def requested(self, name: str) -> str:
        return (await self.machine(name)).metadata.annotations.get(REBOOT_REQUEST_ANNOTATION, "")


@contextlib.asynccontextmanager
async def region(nc: NATS, prefix: str, roots: Path) -> AsyncIterator[Region]:
    settings = LCMSettings(host="127.0.0.1", port=0, mirror_url="http://mirror.local.test",
                           heartbeat_interval=0.5, heartbeat_timeout=3.0, poll_interval=0.2)
    async with system(nc, prefix) as h, aiohttp.ClientSession() as session, \
            aiohttp.ClientSession() as polls:
        await ensure_default_releases(h.store)
        endpoint = Endpoint(h.store, SECRET, settings, bus=h.bus, region=REGION)
        await endpoint.start()
        nodes = PowerLog()
        provider = SimulatedProvider(SimulatedConfig(power_seconds=0.3), nodes=nodes)
        fleet = NodeFleet(h.store, session, polls, endpoint=endpoint.url, secret=SECRET,
                          roots=roots, poll_interval=0.2, nodes=nodes)
        fleet_ctl = Controller("test-fleet", Machine, fleet, h.store, h.bus, region=REGION,
                               workers=4, resync_period=None, record_events=False)
        fleet.requeue = lambda req, delay: fleet_ctl.queue.add_after(req, delay)
        ctls = [
            *service.controllers(h.store, h.bus, settings, region=REGION),
            Controller(name="provider-simulated-machine", kind=Machine, store=h.store,
                       bus=h.bus, region=REGION, workers=4,
                       reconciler=MachineReconciler(h.store, "simulated", SingleTarget(provider),
                                                    region=REGION, poll_interval=0.1)),
            fleet_ctl,
        ]
        env = Region(h, nodes, fleet, ctls)
        try:
            for c in ctls:
                await c.start()
            yield env
        finally:
            for c in reversed(ctls):
                await c.stop()
            await fleet.stop()
            await endpoint.stop()
