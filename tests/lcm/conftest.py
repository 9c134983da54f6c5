"""An LCM system for tests: store + bus + bridge (real nats-server), the LCM controllers,
the agent endpoint on 127.0.0.1, and real agent processes, one per node root.

The test plays the provider's part: it gives each Machine a providerId, addresses and a
``ProviderReady`` condition, holds a provider finalizer, and (``ProviderSim``) removes that
finalizer only once LCM reports the Machine ``Drained`` - the order a real provider keeps.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from nats.aio.client import Client as NATS

from services.lcm import service
from services.lcm.config import LCMSettings
from services.lcm.endpoint import Endpoint
from services.lcm.objects import patch
from services.lcm.tokens import machine_token
from services.release.defaults import ensure_default_releases
from shared.models import (
    CLUSTER_LABEL,
    Cluster,
    ClusterSpec,
    LCMMachine,
    Machine,
    MachineSpec,
    ObjectMeta,
    Resource,
    SimulatedMachineSpec,
    UpdateGroup,
    UpdateGroupSpec,
    encode,
)
from shared.runtime import Controller, update_status
from shared.runtime import conditions as cond
from shared.store import NotFound
from shared.store.kv import KVStore
from shared.tasks import cancel_all, raise_if_cancelling
from tests.harness import Harness, system

NS = "default"
REGION = "local"
SECRET = b"lcm-test-secret"
PROVIDER_FINALIZER = "provider.test/machine"
R = TypeVar("R", bound=Resource)
REPO = Path(__file__).resolve().parents[2]


def _spawn(url: str, name: str, root: Path, token: str) -> subprocess.Popen[bytes]:
    with open(root.parent / f"{name}.agent.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.lcm.agent", "--endpoint", url,
             "--machine", f"{NS}/{name}", "--root", str(root), "--poll-interval", "0.2"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "CCLOUD_LCM_AGENT_TOKEN": token},
        )


@dataclass
class ProviderSim:
    """Plays a provider: addresses on create, deprovision only after LCM drained the node."""

    h: Harness
    deprovisioned: list[tuple[str, str]] = field(default_factory=list)
    hold: set[str] = field(default_factory=set)  # machines whose deprovision is held back
    _task: asyncio.Task[None] | None = None

    async def provision(self, m: Machine, index: int) -> Machine:
        def mutate(obj: Machine) -> None:
            obj.status.provider_id = f"simulated:///{obj.metadata.uid}"
            obj.status.addresses = [f"10.250.0.{index}"]
            cond.mark_true(obj.status, "ProviderReady", "Running")

        return await update_status(self.h.store, m, mutate)

    async def _loop(self) -> None:
        while True:
            for m in await self.h.store.list_all(Machine, NS):
                if m.deleting and PROVIDER_FINALIZER in m.metadata.finalizers:
                    drained = cond.get(m.status, "Drained")
                    if drained is None or drained.status != "True" or m.metadata.name in self.hold:
                        continue
                    m.metadata.finalizers.remove(PROVIDER_FINALIZER)
                    try:
                        await self.h.store.update(m)
                    except Exception:
                        raise_if_cancelling()  # nats-py can turn a cancellation into an error
                        continue
                    self.deprovisioned.append((m.metadata.name, drained.reason))
            raise_if_cancelling()  # ... or lose it to a reply that raced it
            await asyncio.sleep(0.1)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            await cancel_all([self._task])


@dataclass
class Lcm:
    h: Harness
    settings: LCMSettings
    endpoint: Endpoint
    provider: ProviderSim
    roots: Path
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def store(self):  # noqa: ANN201 - the harness KVStore
        return self.h.store

    def root(self, name: str) -> Path:
        return self.roots / name

    async def uid(self, name: str) -> str:
        m = await self.store.get(Machine, name, NS)
        assert m.metadata.uid
        return m.metadata.uid

    async def start_agent(self, name: str, *, token: str | None = None) -> subprocess.Popen[bytes]:
        root = self.root(name)
        root.mkdir(parents=True, exist_ok=True)
        (root / "etc").mkdir(exist_ok=True)
        (root / "etc/hostname").write_text(f"node-{name}\n")
        token = token if token is not None else machine_token(SECRET, await self.uid(name))
        proc = _spawn(self.endpoint.url, name, root, token)
        self.agents[name] = proc
        return proc

    async def kill_agent(self, name: str, sig: int = signal.SIGKILL) -> int:
        proc = self.agents.pop(name)
        proc.send_signal(sig)
        return await asyncio.to_thread(proc.wait, 10)

    async def stop_agents(self) -> None:
        procs = list(self.agents.values())
        self.agents.clear()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                await asyncio.to_thread(p.wait, 10)
            except subprocess.TimeoutExpired:
                p.kill()
                await asyncio.to_thread(p.wait)

    async def create_cluster(
        self, name: str, *, release: str, cps: int, workers: int,
        groups: dict[str, tuple[int, int]] | None = None,
        worker_groups: dict[str, str] | None = None,
    ) -> list[str]:
        cluster = await self.store.create(Cluster(
            metadata=ObjectMeta(name=name, namespace=NS),
            spec=ClusterSpec(region=REGION, provider="simulated", release=release),
        ))
        for gname, (index, conc) in (groups or {}).items():
            await self.store.create(UpdateGroup(
                metadata=ObjectMeta(name=gname, namespace=NS, labels={CLUSTER_LABEL: name},
                                    owner_references=[cluster.owner_ref()]),
                spec=UpdateGroupSpec(cluster=name, index=index, concurrent_updates=conc),
            ))
        names = [f"{name}-cp{i}" for i in range(cps)] + [f"{name}-w{i}" for i in range(workers)]
        for i, mname in enumerate(names):
            role = "control-plane" if "-cp" in mname else "worker"
            m = await self.store.create(Machine(
                metadata=ObjectMeta(name=mname, namespace=NS, finalizers=[PROVIDER_FINALIZER],
                                    owner_references=[cluster.owner_ref()]),
                spec=MachineSpec(cluster=name, role=role, region=REGION,
                                 update_group=(worker_groups or {}).get(mname, ""),
                                 simulated=SimulatedMachineSpec()),
            ))
            await self.provider.provision(m, i + 1)
        return names

    async def cluster(self, name: str) -> Cluster:
        return await self.store.get(Cluster, name, NS)

    async def set_spec(self, cls: type[R], name: str, **fields: Any) -> None:
        """Set spec fields as a user's update would, read again on a conflict (the
        controllers write the same objects meanwhile)."""
        def mutate(obj: R) -> bool:
            spec = obj.spec  # type: ignore[attr-defined]
            changed = any(getattr(spec, k) != v for k, v in fields.items())
            for k, v in fields.items():
                setattr(spec, k, v)
            return changed

        await patch(self.store, await self.store.get(cls, name, NS), mutate)

    async def lcm_machine(self, name: str) -> LCMMachine:
        return await self.store.get(LCMMachine, name, NS)

    async def find(self, cls: type[R], name: str) -> R | None:
        try:
            return await self.store.get(cls, name, NS)
        except NotFound:
            return None

    async def ready(self, name: str) -> bool:
        c = await self.cluster(name)
        st = c.status
        return cond.is_true(st, "Ready") and st.ready_machines == st.total_machines

    async def gone(self, cls: type, name: str) -> bool:
        try:
            await self.store.get(cls, name, NS)
        except NotFound:
            return True
        return False


class SharedGuard:
    """Records every object a ``list_all(shared=True)`` or ``cached(shared=True)`` hands
    out, with its encoding then: those are the store cache's own objects, so a reconciler
    (or the endpoint) that changed one in place would corrupt what every later read
    returns."""

    def __init__(self, store: KVStore) -> None:
        self.handed: list[tuple[Resource, bytes]] = []
        self._list_all = store.list_all
        self._cached = store.cached
        store.list_all = self.list_all  # type: ignore[method-assign]
        store.cached = self.cached  # type: ignore[method-assign]

    def cached(self, cls: type[R], name: str, namespace: str | None, **kw: Any) -> R | None:
        found = self._cached(cls, name, namespace, **kw)
        if found is not None and kw.get("shared"):
            self.handed.append((found, encode(found)))
        return found

    async def list_all(self, cls: type[R], namespace: str | None = None, **kw: Any) -> list[R]:
        items = await self._list_all(cls, namespace, **kw)
        if kw.get("shared"):
            self.handed.extend((o, encode(o)) for o in items)
        return items

    def changed(self) -> list[str]:
        return [f"{o.KIND} {o.metadata.name}" for o, before in self.handed
                if encode(o) != before]


@pytest.fixture
async def lcm(nc: NATS, prefix: str, tmp_path: Path) -> AsyncIterator[Lcm]:
    settings = LCMSettings(
        host="127.0.0.1", port=0, mirror_url="http://mirror.local.test",
        heartbeat_interval=0.5, heartbeat_timeout=6.0, poll_interval=0.2,
    )
    async with system(nc, prefix) as h:
        await ensure_default_releases(h.store)
        guard = SharedGuard(h.store)
        ep = Endpoint(h.store, SECRET, settings, bus=h.bus, region=REGION)
        await ep.start()
        ctrls: list[Controller] = service.controllers(h.store, h.bus, settings, region=REGION)
        for c in ctrls:
            await c.start()
        provider = ProviderSim(h)
        provider.start()
        env = Lcm(h, settings, ep, provider, tmp_path / "nodes")
        try:
            yield env
        finally:
            await env.stop_agents()
            await provider.stop()
            for c in reversed(ctrls):
                await c.stop()
            await ep.stop()
        assert not guard.changed(), f"cached objects changed in place: {guard.changed()}"
