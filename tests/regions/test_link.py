"""Management and one region on two real nats-servers joined as leafnode hub and leaf.

The link between them runs through loopback forwarders the test cuts, so management and
the region both stay up during the partition: each side keeps writing, the region keeps
processing its own events, and after the link heals both sides' writes cross over.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import nats
import pytest
from nats.aio.client import Client as NATS

from services.providers.baremetal.hosts import HostTargets
from services.regional.link import RegionLink, downlink_stream
from services.regional.topology import hub_args, leaf_args
from shared.bus import ChangeEvent
from shared.models import (
    MACHINE_LABEL,
    BareMetalHost,
    Cluster,
    LCMMachine,
    Machine,
    ObjectMeta,
    Region,
)
from shared.models.kinds import (
    BareMetalHostSpec,
    BareMetalMachineSpec,
    BMCDetails,
    ClusterSpec,
    LCMMachineSpec,
    MachineSpec,
    MachineStatus,
)
from shared.natsserver import NatsServer, free_port
from shared.store import Conflict, NotFound
from shared.store.kv import KVStore
from tests.harness import Harness, system
from tests.regions.proxy import Partitionable
from tests.waiting import eventually

NS = "default"
RELEASE_NAME = "mke-3-7-0"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Topology:
    hub: NatsServer
    leaf: NatsServer
    leaf_link: Partitionable
    client_link: Partitionable
    mgmt: Harness
    region: Harness
    link: RegionLink
    link_nc: NATS

    async def cut(self) -> None:
        await self.leaf_link.cut()
        await self.client_link.cut()
        await eventually(lambda: not self.link_nc.is_connected, what="link client to notice")

    async def heal(self) -> None:
        await self.leaf_link.heal()
        await self.client_link.heal()


@contextlib.asynccontextmanager
async def topology(tmp: Path, prefix: str) -> AsyncIterator[Topology]:
    leaf_port = free_port()
    hub = NatsServer(tmp / "hub", server_name="hub",
                     extra_args=hub_args(tmp / "hub.conf", leaf_port=leaf_port))
    await hub.astart()
    leaf_link, client_link = Partitionable(leaf_port), Partitionable(hub.port)
    await leaf_link.start()
    await client_link.start()
    leaf = NatsServer(tmp / "r1", server_name="r1", extra_args=leaf_args(
        tmp / "r1.conf", hub_leaf_url=f"nats-leaf://127.0.0.1:{leaf_link.port}",
        region="r1", prefix=prefix))
    await leaf.astart()
    conns: list[NATS] = []
    try:
        mgmt_nc = await nats.connect(hub.url)
        region_nc = await nats.connect(leaf.url)
        link_nc = await nats.connect(f"nats://127.0.0.1:{client_link.port}",
                                     max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        conns += [mgmt_nc, region_nc, link_nc]
        async with system(mgmt_nc, prefix) as mgmt, system(region_nc, prefix) as region:
            mgmt_view = KVStore(link_nc, bucket=mgmt.settings.objects_bucket)
            await mgmt_view.start()
            link = RegionLink(region="r1", prefix=prefix, local_nc=region_nc,
                              local_store=region.store, mgmt_nc=link_nc, mgmt_store=mgmt_view)
            await link.start()
            try:
                yield Topology(hub, leaf, leaf_link, client_link, mgmt, region, link, link_nc)
            finally:
                await link.stop()
    finally:
        for c in conns:
            with contextlib.suppress(Exception):
                await c.close()
        await leaf_link.stop()
        await client_link.stop()
        await leaf.astop()
        await hub.astop()


def _cluster(name: str, region: str, description: str = "") -> Cluster:
    return Cluster(metadata=ObjectMeta(name=name, namespace=NS), spec=ClusterSpec(
        region=region, provider="simulated", release="mke-3-7-0", description=description))


async def _get(store: KVStore, cls, name: str, ns: str | None = NS):
    try:
        return await store.get(cls, name, ns)
    except NotFound:
        return None


async def test_region_works_through_a_partition_and_catches_up(tmp_path: Path, prefix: str):
    async with topology(tmp_path, prefix) as t:
        # Before the partition: management's objects of r1 reach the region, uids intact.
        await t.mgmt.store.create(Region(metadata=ObjectMeta(name="r1")))
        c1 = await t.mgmt.store.create(_cluster("c1", "r1"))
        m1 = await t.mgmt.store.create(Machine(
            metadata=ObjectMeta(name="m1", namespace=NS, owner_references=[c1.owner_ref()]),
            spec=MachineSpec(cluster="c1", region="r1")))
        await t.mgmt.store.create(_cluster("x", "r2"))  # another region's object

        async def arrived_m1():
            got = await _get(t.region.store, Machine, "m1")
            return got if got and got.metadata.uid == m1.metadata.uid else None

        got_m1 = await eventually(arrived_m1, timeout=15, what="m1 in the region")
        assert got_m1.metadata.owner_references == m1.metadata.owner_references
        assert (await t.region.store.get(Cluster, "c1", NS)).metadata.uid == c1.metadata.uid
        assert await _get(t.region.store, Region, "r1", None) is not None

        # A regional consumer (like LCM) reading only its region's subjects.
        seen: list[ChangeEvent] = []

        async def record(ev: ChangeEvent) -> None:
            seen.append(ev)

        await t.region.bus.consume("lcm-test", [f"{prefix}.r1.>"], record)

        await t.cut()

        # Management keeps taking writes for r1 ...
        c2 = await t.mgmt.store.create(_cluster("c2", "r1"))
        c1m = await t.mgmt.store.get(Cluster, "c1", NS)
        await t.mgmt.store.update(msgspec.structs.replace(
            c1m, spec=msgspec.structs.replace(c1m.spec, description="edited at management")))
        # ... and the region keeps working: status writes and new regional objects.
        rm1 = await t.region.store.get(Machine, "m1", NS)
        await t.region.store.update_status(msgspec.structs.replace(
            rm1, status=MachineStatus(phase="Provisioned", provider_id="simulated:///m1")))
        lm1 = await t.region.store.create(LCMMachine(
            metadata=ObjectMeta(name="m1", namespace=NS, owner_references=[m1.owner_ref()]),
            spec=LCMMachineSpec(cluster="c1", machine="m1", region="r1")))

        await eventually(
            lambda: {("Machine", "updated"), ("LCMMachine", "created")}
            <= {(e.kind, e.verb) for e in seen},
            what="the regional consumer to process events during the partition")
        assert await _get(t.region.store, Cluster, "c2") is None, "the link was not down"
        assert (await t.mgmt.store.get(Machine, "m1", NS)).status.phase == ""

        await t.heal()

        async def caught_up() -> bool:
            rc2 = await _get(t.region.store, Cluster, "c2")
            rc1 = await _get(t.region.store, Cluster, "c1")
            mm1 = await _get(t.mgmt.store, Machine, "m1")
            mlm1 = await _get(t.mgmt.store, LCMMachine, "m1")
            return bool(
                rc2 and rc2.metadata.uid == c2.metadata.uid
                and rc1 and rc1.spec.description == "edited at management"
                and mm1 and mm1.status.phase == "Provisioned"
                and mlm1 and mlm1.metadata.uid == lm1.metadata.uid
            )

        await eventually(caught_up, timeout=30, what="both sides to catch up after the heal")

        # Field ownership held: the region's status did not undo management's spec edit,
        # and the regional object kept its owner reference across.
        mc1 = await t.mgmt.store.get(Cluster, "c1", NS)
        assert mc1.spec.description == "edited at management"
        mlm1 = await t.mgmt.store.get(LCMMachine, "m1", NS)
        assert mlm1.metadata.owner_references == lm1.metadata.owner_references
        mm1 = await t.mgmt.store.get(Machine, "m1", NS)
        assert mm1.spec == m1.spec and mm1.metadata.generation == m1.metadata.generation

        # Only r1 crossed: r2's object and events never reached the regional server.
        assert await _get(t.region.store, Cluster, "x") is None
        assert all(e.region == "r1" for e in seen)
        js = t.region.nc.jetstream()
        info = await js.stream_info(downlink_stream(prefix), subjects_filter=">")
        subjects = set((info.state.subjects or {}).keys())
        assert any(s.startswith(f"{prefix}.r1.") for s in subjects)
        assert not any(s.startswith(f"{prefix}.r2.") for s in subjects), subjects
        # And the regional writes stayed out of management's own event stream's r1 count
        # only through the link (no double capture across the leafnode). The link writes
        # into management unannounced: its events are the bridge's, once it has sent them.
        written = int(mlm1.metadata.resource_version or 0)
        await eventually(
            lambda: int(t.mgmt.publisher.position("LCMMachine") or 0) >= written,
            what="management's bridge past the linked LCMMachine write")
        mgmt_info = await t.mgmt.nc.jetstream().stream_info(
            t.mgmt.bus.stream, subjects_filter=f"{prefix}.r1.lcmmachine.>")
        assert sum((mgmt_info.state.subjects or {}).values()) == 1


async def test_deletion_requested_at_management_completes_in_the_region(
    tmp_path: Path, prefix: str
) -> None:
    async with topology(tmp_path, prefix) as t:
        c = await t.mgmt.store.create(_cluster("gone", "r1"))
        await eventually(lambda: _get(t.region.store, Cluster, "gone"), timeout=15,
                         what="cluster in the region")
        # A regional controller puts its finalizer on; it flows up to management.
        rc = await t.region.store.get(Cluster, "gone", NS)
        rc = await t.region.store.update(msgspec.structs.replace(
            rc, metadata=msgspec.structs.replace(rc.metadata, finalizers=["lcm/cleanup"])))

        async def finalizer_up():
            got = await _get(t.mgmt.store, Cluster, "gone")
            return got and got.metadata.finalizers == ["lcm/cleanup"]

        await eventually(finalizer_up, timeout=15, what="finalizer at management")
        await t.mgmt.store.delete(Cluster, "gone", NS)

        async def deleting_in_region():
            got = await _get(t.region.store, Cluster, "gone")
            return got if got and got.deleting else None

        await eventually(deleting_in_region, timeout=15, what="deletion request down")

        async def finish_cleanup() -> bool:  # a controller retries on Conflict, so do we
            rc = await _get(t.region.store, Cluster, "gone")
            if rc is None:
                return True
            try:
                await t.region.store.update(msgspec.structs.replace(
                    rc, metadata=msgspec.structs.replace(rc.metadata, finalizers=[])))
            except Conflict:
                return False
            return True

        await eventually(finish_cleanup, what="the regional finalizer removed")

        async def gone_everywhere() -> bool:
            return (await _get(t.mgmt.store, Cluster, "gone") is None
                    and await _get(t.region.store, Cluster, "gone") is None)

        await eventually(gone_everywhere, timeout=15, what="removal at management")
        assert c.metadata.uid


async def test_management_releases_replace_a_regional_seed(tmp_path: Path, prefix: str) -> None:
    """Releases are global: management owns them whole. A copy the region made itself (the
    regional release service seeds the defaults) gives way to management's, uid included,
    and later edits at management keep flowing down."""
    from services.release.defaults import cluster_release
    from shared.models import ClusterRelease

    async with topology(tmp_path, prefix) as t:
        seeded = await t.region.store.create(cluster_release(RELEASE_NAME))
        rel = await t.mgmt.store.create(cluster_release(RELEASE_NAME))
        assert seeded.metadata.uid != rel.metadata.uid

        async def replaced():
            got = await _get(t.region.store, ClusterRelease, RELEASE_NAME, None)
            return got if got and got.metadata.uid == rel.metadata.uid else None

        await eventually(replaced, timeout=15, what="management's release in the region")
        md = msgspec.structs.replace(rel.metadata, labels={"edited": "yes"})
        await t.mgmt.store.update(msgspec.structs.replace(rel, metadata=md))

        async def edited() -> bool:
            got = await replaced()
            return bool(got and got.metadata.labels.get("edited") == "yes")

        await eventually(edited, timeout=15, what="management's edit in the region")


async def test_a_host_claimed_in_the_region_keeps_its_claim_through_edits_at_management(
    tmp_path: Path, prefix: str
) -> None:
    """The bare-metal provider claims a host in the region (spec.consumer, spec.online and
    the machine label, its own code on the regional store) while a user labels the host at
    management, across a partition: after the heal both sides hold the claim and the user's
    label, and a later edit at management leaves the claim alone. Lost, the provider would
    claim a second host for the same Machine."""
    async with topology(tmp_path, prefix) as t:
        await t.mgmt.store.create(_cluster("c1", "r1"))
        m = await t.mgmt.store.create(Machine(
            metadata=ObjectMeta(name="w-0", namespace=NS),
            spec=MachineSpec(cluster="c1", region="r1", baremetal=BareMetalMachineSpec())))
        h = await t.mgmt.store.create(BareMetalHost(
            metadata=ObjectMeta(name="bm-0", namespace=NS, labels={"rack": "a"}),
            spec=BareMetalHostSpec(region="r1", bmc=BMCDetails(address="redfish://10.0.0.1/1"),
                                   boot_mac_address="52:54:00:00:00:01")))
        await eventually(lambda: _get(t.region.store, BareMetalHost, "bm-0"), timeout=15,
                         what="the host in the region")

        await t.cut()
        claimed = await HostTargets(t.region.store).claim(m)
        assert claimed.spec.consumer == m.metadata.uid

        async def label(value: str) -> bool:  # a user's edit at management
            got = await t.mgmt.store.get(BareMetalHost, "bm-0", NS)
            got.metadata.labels["team"] = value
            try:
                await t.mgmt.store.update(got)
            except Conflict:
                return False
            return True

        await eventually(lambda: label("x"), what="the user's label at management")
        await t.heal()

        async def agreed(team: str) -> bool:
            mh = await _get(t.mgmt.store, BareMetalHost, "bm-0")
            rh = await _get(t.region.store, BareMetalHost, "bm-0")
            want = {"rack": "a", "team": team, MACHINE_LABEL: "w-0"}
            return bool(
                mh and rh and all(
                    (o.spec.consumer, o.spec.online, o.metadata.labels)
                    == (m.metadata.uid, True, want) for o in (mh, rh))
                and mh.metadata.generation == rh.metadata.generation
            )

        await eventually(lambda: agreed("x"), timeout=30,
                         what="the claim at management and the label in the region")
        await eventually(lambda: label("y"), what="another label edit at management")
        await eventually(lambda: agreed("y"), timeout=15, what="the edit down, the claim kept")
        rh = await t.region.store.get(BareMetalHost, "bm-0", NS)
        assert rh.metadata.uid == h.metadata.uid
        assert rh.metadata.generation == claimed.metadata.generation, "the claim's, not older"


@pytest.mark.parametrize("region", ["global"])
def test_link_refuses_the_global_pseudo_region(region: str) -> None:
    with pytest.raises(ValueError):
        RegionLink(region=region, prefix="p", local_nc=None, local_store=None,  # type: ignore[arg-type]
                   mgmt_nc=None, mgmt_store=None)  # type: ignore[arg-type]


async def test_link_service_process_copies_down(tmp_path: Path, prefix: str) -> None:
    """``python -m services.regional`` as a process, configured only by the environment."""
    import asyncio
    import os
    import signal
    import subprocess
    import sys

    leaf_port = free_port()
    hub = NatsServer(tmp_path / "hub", server_name="hub",
                     extra_args=hub_args(tmp_path / "hub.conf", leaf_port=leaf_port))
    await hub.astart()
    leaf = NatsServer(tmp_path / "r1", server_name="r1", extra_args=leaf_args(
        tmp_path / "r1.conf", hub_leaf_url=f"nats-leaf://127.0.0.1:{leaf_port}",
        region="r1", prefix=prefix))
    await leaf.astart()
    env = {**os.environ, "CCLOUD_NATS_URL": leaf.url, "CCLOUD_REGION": "r1",
           "CCLOUD_PREFIX": prefix, "CCLOUD_MANAGEMENT_URL": hub.url,
           "CCLOUD_LEADER_ELECTION": "false"}
    repo = REPO
    missing = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.regional", cwd=repo,
        env={**env, "CCLOUD_MANAGEMENT_URL": ""}, stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(missing.communicate(), 30)
    assert missing.returncode != 0 and b"CCLOUD_MANAGEMENT_URL is not set" in err
    assert b"Traceback" not in err
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.regional", cwd=repo, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mgmt_nc = await nats.connect(hub.url)
    region_nc = await nats.connect(leaf.url)
    try:
        async with system(mgmt_nc, prefix) as mgmt, system(region_nc, prefix) as region:
            c = await mgmt.store.create(_cluster("c1", "r1"))
            got = await eventually(lambda: _get(region.store, Cluster, "c1"), timeout=20,
                                   what="the link process to copy c1 down")
            assert got.metadata.uid == c.metadata.uid
            # Up: the region's status reaches management, announced by the link as any
            # writer's write is, so management's bridge publishes nothing of its own.
            got.status.phase = "Provisioning"
            await region.store.update_status(got)

            async def copied_up() -> Cluster | None:
                up = await _get(mgmt.store, Cluster, "c1")
                return up if up is not None and up.status.phase == "Provisioning" else None

            up = await eventually(copied_up, timeout=20, what="the status copied up")
            await eventually(lambda: int(mgmt.publisher.position("Cluster") or 0)
                             >= int(up.metadata.resource_version or 0),
                             what="management's bridge past the copy")
            assert mgmt.publisher.published == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        await mgmt_nc.close()
        await region_nc.close()
        await leaf.astop()
        await hub.astop()
