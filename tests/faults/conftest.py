"""A whole region as processes, for kill -9 tests: nats-server, bridge, release (mirror),
LCM, the simulated provider, the API gateway, and simulated agents (``bench.fleet``).

The test owns every process (``bench.common.Stack``): it can SIGKILL any of them, or the
nats-server, and start it again on the same port and data. The test reads the system of
record through its own NATS connection (which reconnects across a server restart), and
writes through the API like a user would, recording what the API acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import nats
import pytest
from nats.aio.client import Client as NATS

from bench.common import Proc, Stack
from services.providers.simulated.nodes import KVNodes, SimNode, nodes_bucket
from shared.models import API_VERSION, CLUSTER_LABEL, Cluster, Machine, MachinePool, PublicKey
from shared.natsserver import NatsServer, free_port
from shared.runtime import conditions as cond
from shared.store import NotFound
from shared.store.kv import KVStore
from tests.waiting import eventually

NS = "faults"
RELEASE = "mke-3-7-1"
SECRET = "faults-agent-secret"
BASE = f"/apis/{API_VERSION}"
PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFaultsLedger ledger@faults"

# name -> python -m argv; started in this order
SERVICES: dict[str, list[str]] = {
    "bridge": ["-m", "services.bridge"],
    "mirror": ["-m", "services.release"],
    "lcm": ["-m", "services.lcm"],
    "provider": ["-m", "services.providers.simulated"],
}


@dataclass
class Acked:
    """What the API acknowledged: (kind, name) -> resourceVersion, and ledger seq -> rv."""

    objects: dict[tuple[str, str], int] = field(default_factory=dict)
    ledger: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Region:
    stack: Stack
    nc: NATS
    store: KVStore
    nodes: KVNodes
    http: aiohttp.ClientSession
    lcm_port: int
    acked: Acked = field(default_factory=Acked)

    # --- processes ------------------------------------------------------------------------

    def start(self, name: str) -> Proc:
        if name == "api":
            proc = self.stack.spawn("api", ["-m", "services.api", "--port",
                                            str(self.stack.api_port), "--tokens-file",
                                            str(self.stack.tokens_file()), "--audit-log",
                                            str(self.stack.workdir / "audit.log")])
        elif name == "fleet":
            proc = self.stack.spawn("fleet", ["-m", "bench.fleet", "--endpoint",
                                              f"http://127.0.0.1:{self.lcm_port}", "--roots",
                                              str(self.stack.workdir / "nodes"),
                                              "--poll-interval", "0.3"])
        else:
            proc = self.stack.spawn(name, SERVICES[name])
        return proc

    def kill9(self, name: str) -> None:
        self.stack.procs[name].kill9()

    async def restart_nats(self) -> None:
        assert self.stack.nats is not None
        await self.stack.nats.astop(kill=True)
        await self.stack.nats.astart()

    async def wait_api(self) -> None:
        async def up() -> bool:
            try:
                async with self.http.get(self.stack.api_url + "/readyz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(up, timeout=30, what="the API answering /readyz")

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{p.tail(15)}" for n, p in self.stack.procs.items())

    # --- writes through the API -------------------------------------------------------------

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.token}"}

    async def post(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.stack.api_url}{BASE}/namespaces/{NS}/{plural}"
        async with self.http.post(url, json=body, headers=self.headers) as r:
            data = await r.json(content_type=None)
            assert r.status == 201, f"POST {plural}: {r.status} {data}"
        md = data["metadata"]
        self.acked.objects[(data["kind"], md["name"])] = int(md["resourceVersion"])
        return data

    async def create_cluster(self, name: str, *, workers: int = 1) -> list[str]:
        c = await self.post("clusters", {
            "metadata": {"name": name},
            "spec": {"region": "local", "provider": "simulated", "release": RELEASE},
        })
        owner = {"apiVersion": API_VERSION, "kind": "Cluster", "name": name,
                 "uid": c["metadata"]["uid"]}
        names = [f"{name}-cp0"] + [f"{name}-w{i}" for i in range(workers)]
        for m in names:
            await self.post("machines", {
                "metadata": {"name": m, "labels": {CLUSTER_LABEL: name},
                             "ownerReferences": [owner]},
                "spec": {"cluster": name, "role": "control-plane" if "-cp" in m else "worker",
                         "region": "local", "simulated": {}},
            })
        return names

    async def scale(self, pool: str, replicas: int) -> None:
        """``kubectl scale``: a merge patch of the pool's scale subresource."""
        url = f"{self.stack.api_url}{BASE}/namespaces/{NS}/machinepools/{pool}/scale"
        async with self.http.patch(
            url, data=json.dumps({"spec": {"replicas": replicas}}),
            headers={**self.headers, "Content-Type": "application/merge-patch+json"},
        ) as r:
            data = await r.json(content_type=None)
            assert r.status == 200, f"scale {pool}: {r.status} {data}"

    async def ledger_writer(self, stop: asyncio.Event) -> None:
        """PATCH a counter label as fast as the API takes it; record every acknowledged one."""
        url = f"{self.stack.api_url}{BASE}/namespaces/{NS}/publickeys/ledger"
        seq = self.acked.ledger[-1][0] if self.acked.ledger else 0
        while not stop.is_set():
            seq += 1
            patch = json.dumps({"metadata": {"labels": {"seq": str(seq)}}})
            try:
                async with self.http.patch(
                    url, data=patch, timeout=aiohttp.ClientTimeout(total=2),
                    headers={**self.headers, "Content-Type": "application/merge-patch+json"},
                ) as r:
                    data = await r.json(content_type=None)
                    if r.status == 200:
                        self.acked.ledger.append((seq, int(data["metadata"]["resourceVersion"])))
            except (aiohttp.ClientError, TimeoutError, ValueError):
                pass
            await asyncio.sleep(0.02)

    # --- reading the system of record ---------------------------------------------------------

    async def machines(self) -> list[Machine]:
        return await self.store.list_all(Machine, NS)

    async def ready(self, name: str) -> bool:
        try:
            c = await self.store.get(Cluster, name, NS)
        except NotFound:
            return False
        return (cond.is_true(c.status, "Ready") and c.status.total_machines > 0
                and c.status.ready_machines == c.status.total_machines)

    async def provider_nodes(self) -> list[SimNode]:
        return await self.nodes.all()

    async def check_invariants(self, clusters: list[str]) -> None:
        """Every cluster Ready, one provider node per Machine, no acknowledged write lost."""
        async def all_ready() -> list[str] | bool:
            missing = [c for c in clusters if not await self.ready(c)]
            return not missing or False

        try:
            await eventually(all_ready, timeout=90, interval=0.25,
                             what=f"clusters {clusters} Ready")
        except AssertionError as e:
            states = []
            for c in clusters:
                with contextlib.suppress(NotFound):
                    cl = await self.store.get(Cluster, c, NS)
                    conds = [(x.type, x.status, x.reason) for x in cl.status.conditions]
                    states.append(f"{c}: {conds}")
            raise AssertionError(f"{e}\n{states}\n{self.logs()}") from None
        machines = await self.machines()
        nodes = await self.provider_nodes()
        uids = [n.machine_uid for n in nodes]
        assert len(uids) == len(set(uids)), f"duplicate nodes at the provider: {uids}"
        names = [n.name for n in nodes]
        assert len(names) == len(set(names)), f"two nodes for one machine name: {names}"
        assert sorted(uids) == sorted(m.metadata.uid for m in machines), (
            f"provider nodes {sorted(names)} do not match Machines "
            f"{sorted(m.metadata.name for m in machines)}")
        for (kind, name), rv in self.acked.objects.items():
            cls = {"Cluster": Cluster, "Machine": Machine, "PublicKey": PublicKey,
                   "MachinePool": MachinePool}[kind]
            obj = await self.store.get(cls, name, NS)
            assert int(obj.metadata.resource_version or 0) >= rv, f"{kind} {name} went back"
        if self.acked.ledger:
            last_seq, last_rv = self.acked.ledger[-1]
            ledger = await self.store.get(PublicKey, "ledger", NS)
            assert int(ledger.metadata.labels["seq"]) >= last_seq, (
                f"lost write: ledger seq {ledger.metadata.labels['seq']} < acknowledged "
                f"{last_seq}")
            assert int(ledger.metadata.resource_version or 0) >= last_rv


@pytest.fixture
async def region() -> AsyncIterator[Region]:
    stack = Stack(prefix="faults")
    stack.start_nats()
    stack.api_port = free_port()
    lcm_port = free_port()
    stack_env = {
        "CCLOUD_LEASE_SECONDS": "2",
        "CCLOUD_LOG_LEVEL": "INFO",
        "CCLOUD_LCM_SECRET": SECRET,
        "CCLOUD_LCM_PORT": str(lcm_port),
        "CCLOUD_LCM_HEARTBEAT_INTERVAL": "1",
        "CCLOUD_LCM_HEARTBEAT_TIMEOUT": "30",
        "CCLOUD_LCM_POLL_INTERVAL": "0.3",
        "CCLOUD_MIRROR_PORT": str(free_port()),
        "CCLOUD_SIMULATED_PROVISION_SECONDS": "1.0",
        "CCLOUD_SIMULATED_POWER_SECONDS": "0.2",
        "CCLOUD_PROVIDER_POLL_INTERVAL": "0.3",
    }
    base_env = stack.env

    def env(**extra: str) -> dict[str, str]:
        return base_env(**{**stack_env, **extra})

    stack.env = env  # type: ignore[method-assign]
    nc = await nats.connect(stack.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    store = KVStore(nc, bucket=f"{stack.prefix}-objects")
    await store.start()
    nodes = KVNodes(nc, bucket=nodes_bucket(stack.prefix))
    await nodes.start()
    http = aiohttp.ClientSession()
    r = Region(stack, nc, store, nodes, http, lcm_port)
    try:
        for name in (*SERVICES, "api", "fleet"):
            r.start(name)
        await r.wait_api()
        await r.post("publickeys", {"metadata": {"name": "ledger", "labels": {"seq": "0"}},
                                    "spec": {"publicKey": PUBKEY}})
        yield r
    finally:
        await http.close()
        with contextlib.suppress(Exception):
            await nc.close()
        stack.stop()
        shutil.rmtree(stack.workdir, ignore_errors=True)


__all__ = ["NS", "NatsServer", "Region"]
