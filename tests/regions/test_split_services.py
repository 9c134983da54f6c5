"""The real regional service set on a leaf nats-server keeps provisioning through a
partition from management (on the hub) and catches up after it heals.

Every service runs as a process (``bench.common.Stack``, as in ``tests/faults``):
management is the hub nats-server with its bridge and release service; the region is the
leaf nats-server with its bridge, release service, LCM, the simulated provider, the region
link and simulated agents (``bench.fleet``). The leafnode and the link's connection to management go
through loopback forwarders the test cuts. The test writes at management like the API
would (a store that announces its commits) and reads both stores directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client as NATS

from bench.common import Stack
from services.providers.simulated.nodes import KVNodes, nodes_bucket
from services.regional.topology import hub_args, leaf_args
from shared.bus import Bus
from shared.models import CLUSTER_LABEL, Cluster, ClusterRelease, Machine, ObjectMeta, Region
from shared.models.kinds import ClusterSpec, MachineSpec, RegionSpec, SimulatedMachineSpec
from shared.natsserver import NatsServer, free_port
from shared.runtime import conditions as cond
from shared.store import NotFound
from shared.store.kv import KVStore
from tests.regions.proxy import Partitionable
from tests.waiting import eventually

NS = "default"
REGION = "r1"
RELEASE = "mke-3-7-1"

SERVICE_ENV = {
    "CCLOUD_LEASE_SECONDS": "2",
    "CCLOUD_LOG_LEVEL": "INFO",
    "CCLOUD_LCM_SECRET": "split-agent-secret",
    "CCLOUD_LCM_HEARTBEAT_INTERVAL": "1",
    "CCLOUD_LCM_HEARTBEAT_TIMEOUT": "30",
    "CCLOUD_LCM_POLL_INTERVAL": "0.3",
    # Long enough that provisioning, which starts as soon as a machine reaches the region,
    # cannot finish before the test has seen the machines arrive and cut the link.
    "CCLOUD_SIMULATED_PROVISION_SECONDS": "2.5",
    "CCLOUD_SIMULATED_POWER_SECONDS": "0.1",
    "CCLOUD_PROVIDER_POLL_INTERVAL": "0.3",
}


@dataclass
class Split:
    mgmt_stack: Stack
    region_stack: Stack
    leaf_link: Partitionable
    client_link: Partitionable
    mgmt: KVStore
    region: KVStore
    nodes: KVNodes

    async def cut(self) -> None:
        await self.leaf_link.cut()
        await self.client_link.cut()

    async def heal(self) -> None:
        await self.leaf_link.heal()
        await self.client_link.heal()

    def logs(self) -> str:
        procs = {**self.mgmt_stack.procs, **self.region_stack.procs}
        return "\n".join(f"--- {n} ---\n{p.tail(15)}" for n, p in procs.items())


def _stack(tmp: Path, name: str, prefix: str, region: str, nats_server: NatsServer) -> Stack:
    stack = Stack(prefix=prefix, workdir=tmp / name)
    stack.nats = nats_server
    base = stack.env
    stack.env = lambda **extra: base(  # type: ignore[method-assign]
        **{**SERVICE_ENV, "CCLOUD_REGION": region,
           "CCLOUD_MIRROR_PORT": str(free_port()), **extra})
    return stack


@contextlib.asynccontextmanager
async def split(tmp: Path, prefix: str) -> AsyncIterator[Split]:
    leaf_port = free_port()
    hub = NatsServer(tmp / "mgmt" / "nats", server_name="hub",
                     extra_args=hub_args(tmp / "hub.conf", leaf_port=leaf_port))
    mgmt_stack = _stack(tmp, "mgmt", prefix, "local", hub)
    await hub.astart()
    leaf_link, client_link = Partitionable(leaf_port), Partitionable(hub.port)
    await leaf_link.start()
    await client_link.start()
    leaf = NatsServer(tmp / REGION / "nats", server_name=REGION, extra_args=leaf_args(
        tmp / "leaf.conf", hub_leaf_url=f"nats-leaf://127.0.0.1:{leaf_link.port}",
        region=REGION, prefix=prefix))
    region_stack = _stack(tmp, REGION, prefix, REGION, leaf)
    conns: list[NATS] = []
    try:
        await leaf.astart()
        mgmt_stack.spawn("mgmt-bridge", ["-m", "services.bridge"])
        mgmt_stack.spawn("mgmt-release", ["-m", "services.release"])
        lcm_port = free_port()
        region_stack.spawn("bridge", ["-m", "services.bridge"])
        region_stack.spawn("release", ["-m", "services.release"])
        region_stack.spawn("lcm", ["-m", "services.lcm"], CCLOUD_LCM_PORT=str(lcm_port))
        region_stack.spawn("provider", ["-m", "services.providers.simulated"])
        region_stack.spawn("region-link", ["-m", "services.regional"],
                           CCLOUD_MANAGEMENT_URL=f"nats://127.0.0.1:{client_link.port}")
        region_stack.spawn("fleet", ["-m", "bench.fleet", "--endpoint",
                                     f"http://127.0.0.1:{lcm_port}", "--roots",
                                     str(region_stack.workdir / "nodes"),
                                     "--poll-interval", "0.3", "--in-memory"])
        mgmt_nc = await nats.connect(hub.url)
        region_nc = await nats.connect(leaf.url)
        conns += [mgmt_nc, region_nc]
        bus = Bus(mgmt_nc, prefix=prefix, service="test-api")
        await bus.start()
        mgmt = KVStore(mgmt_nc, bucket=f"{prefix}-objects", on_commit=bus.announce)
        await mgmt.start()
        region = KVStore(region_nc, bucket=f"{prefix}-objects")
        await region.start()
        nodes = KVNodes(region_nc, bucket=nodes_bucket(prefix))
        await nodes.start()
        yield Split(mgmt_stack, region_stack, leaf_link, client_link, mgmt, region, nodes)
    finally:
        for c in conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.close(), 10)
        await asyncio.to_thread(region_stack.stop)
        await asyncio.to_thread(mgmt_stack.stop)
        await leaf_link.stop()
        await client_link.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _machine(name: str, cluster: Cluster, role: str = "worker") -> Machine:
    return Machine(
        metadata=ObjectMeta(name=name, namespace=NS, labels={CLUSTER_LABEL: cluster.metadata.name},
                            owner_references=[cluster.owner_ref()]),
        spec=MachineSpec(cluster=cluster.metadata.name, role=role,  # type: ignore[arg-type]
                         region=REGION, simulated=SimulatedMachineSpec()))


async def _get(store: KVStore, cls, name: str, ns: str | None = NS):
    try:
        return await store.get(cls, name, ns)
    except NotFound:
        return None


def _ready(c: Cluster | None, machines: int) -> bool:
    return bool(c and cond.is_true(c.status, "Ready")
                and c.status.ready_machines == c.status.total_machines == machines)


async def test_regional_services_provision_through_a_partition(tmp_path: Path, prefix: str):
    async with split(tmp_path, prefix) as s:
        await s.mgmt.create(Region(metadata=ObjectMeta(name=REGION),
                                   spec=RegionSpec(providers=["simulated"])))
        c1 = await s.mgmt.create(Cluster(
            metadata=ObjectMeta(name="c1", namespace=NS),
            spec=ClusterSpec(region=REGION, provider="simulated", release=RELEASE)))
        created = [await s.mgmt.create(_machine("c1-cp0", c1, "control-plane")),
                   await s.mgmt.create(_machine("c1-w0", c1))]
        uids = {m.metadata.name: m.metadata.uid for m in created}

        async def flowed_down() -> bool:
            got = [await _get(s.region, Machine, n) for n in uids]
            release = await _get(s.region, ClusterRelease, RELEASE, None)
            return release is not None and all(
                m and m.metadata.uid == uids[m.metadata.name] for m in got)

        try:  # releases are global: management's release service makes them, they flow down
            await eventually(flowed_down, timeout=30,
                             what=f"c1's machines and release {RELEASE} in the region")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{s.logs()}") from None
        assert (await s.region.get(Cluster, "c1", NS)).metadata.uid == c1.metadata.uid

        await s.cut()
        assert not _ready(await _get(s.region, Cluster, "c1"), 2), "Ready before the cut"
        # Management keeps taking writes: a machine the region cannot see yet.
        w1 = await s.mgmt.create(_machine("c1-w1", c1))
        uids["c1-w1"] = w1.metadata.uid

        # The region alone provisions both machines and brings c1 Ready.
        async def ready_in_region() -> bool:
            return _ready(await _get(s.region, Cluster, "c1"), 2)

        try:
            await eventually(ready_in_region, timeout=45, interval=0.25,
                             what="c1 Ready in the region during the partition")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{s.logs()}") from None
        assert await _get(s.region, Machine, "c1-w1") is None, "the link was not cut"
        assert not cond.is_true((await s.mgmt.get(Cluster, "c1", NS)).status, "Ready")

        await s.heal()

        # After the heal: the new machine arrives and is provisioned, and management ends
        # up with the region's status for all three.
        async def caught_up() -> bool:
            if not _ready(await _get(s.mgmt, Cluster, "c1"), 3):
                return False
            machines = await s.mgmt.list_all(Machine, NS)
            return len(machines) == 3 and all(
                cond.is_true(m.status, "Ready") and m.status.provider_id for m in machines)

        try:
            await eventually(caught_up, timeout=45, interval=0.25,
                             what="management to hold c1 Ready with three Ready machines")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{s.logs()}") from None

        assert (await s.mgmt.get(Cluster, "c1", NS)).metadata.uid == c1.metadata.uid
        for store in (s.mgmt, s.region):
            machines = await store.list_all(Machine, NS)
            assert {m.metadata.name: m.metadata.uid for m in machines} == uids
            assert all(m.metadata.owner_references == [c1.owner_ref()] for m in machines)
        region_w1 = await s.region.get(Machine, "c1-w1", NS)
        mgmt_w1 = await s.mgmt.get(Machine, "c1-w1", NS)
        assert mgmt_w1.status.provider_id == region_w1.status.provider_id
        # Both release services seed the default releases; whichever seeded the region
        # first, the region ends up with management's (same uid).
        mgmt_rel = await s.mgmt.get(ClusterRelease, RELEASE, None)

        async def management_release() -> bool:
            got = await _get(s.region, ClusterRelease, RELEASE, None)
            return bool(got and got.metadata.uid == mgmt_rel.metadata.uid)

        try:
            await eventually(management_release, timeout=45, what="management's release")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{s.logs()}") from None
        # One provider node per machine, none made twice.
        nodes = await s.nodes.all()
        node_uids = [n.machine_uid for n in nodes]
        assert sorted(node_uids) == sorted(uids.values()), (
            f"provider nodes {[n.name for n in nodes]} do not match {sorted(uids)}")
