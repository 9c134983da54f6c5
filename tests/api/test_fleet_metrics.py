"""The fleet's state on the gateway's health port (services/api/fleet_metrics.py, ops.py):
objects and status written into the real store show up as series, follow status changes,
and go when the objects go; the public API port never shows them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer
from nats.aio.client import Client as NATS
from prometheus_client.parser import text_string_to_metric_families

from services.api.app import create_app
from services.api.audit import AuditLog
from services.api.auth import Authenticator
from services.api.fleet_metrics import KINDS, METRICS, FleetCollector
from services.api.ops import create_ops_app
from shared.models import (
    ArtifactFailure,
    ArtifactMirror,
    ArtifactMirrorSpec,
    BareMetalHost,
    BareMetalHostSpec,
    BMCDetails,
    Cluster,
    ClusterSpec,
    Condition,
    GracefulRebootRequest,
    GracefulRebootRequestSpec,
    HealthCheckTarget,
    Machine,
    MachineHealthCheck,
    MachineHealthCheckSpec,
    MachinePool,
    MachinePoolSpec,
    MachineSpec,
    ObjectMeta,
    OpenStackAuth,
    OpenStackCredential,
    OpenStackCredentialSpec,
    RebootTarget,
    Region,
    RegionSpec,
    RegionStatus,
    Resource,
    VsphereCredential,
    VsphereCredentialSpec,
)
from shared.natsserver import NatsServer, free_port
from shared.store import Unavailable
from shared.store.kv import KVStore
from tests.api.conftest import Gateway, ns_path, users_doc
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[2]

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Series:
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(series: Series, name: str, **labels: str) -> float | None:
    return series.get((name, frozenset(labels.items())))


def named(series: Series, name: str, **labels: str) -> dict[frozenset, float]:
    """The series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return {lbl: v for (n, lbl), v in series.items() if n == name and want <= lbl}


def cond(type_: str, status: str, reason: str = "") -> Condition:
    return Condition(type=type_, status=status, reason=reason)  # type: ignore[arg-type]


class Fleet:
    """The gateway (API port) and its health port over one store."""

    def __init__(self, gateway: Gateway, ops_url: str) -> None:
        self.gw = gateway
        self.store = gateway.store
        self.ops_url = ops_url

    async def scrape(self, url: str | None = None) -> Series:
        async with self.gw.session.get((url or self.ops_url) + "/metrics") as r:
            assert r.status == 200, await r.text()
            return parse(await r.text())

    async def until(self, check: Any, what: str) -> Series:
        """Scrape until ``check(series)`` holds (the cache follows writes a moment later)."""
        async def probe() -> Series | None:
            s = await self.scrape()
            return s if check(s) else None
        return await eventually(probe, timeout=10, what=what)

    async def put(self, obj: Resource, **status: Any) -> Any:
        stored = await self.store.create(obj)
        if status:
            st = msgspec.structs.replace(stored.status, **status)  # type: ignore[attr-defined]
            stored = await self.store.update_status(msgspec.structs.replace(stored, status=st))
        return stored

    async def set_status(self, cls: type[Resource], name: str, ns: str | None,
                         **status: Any) -> None:
        obj = await self.store.get(cls, name, ns)
        st = msgspec.structs.replace(obj.status, **status)  # type: ignore[attr-defined]
        await self.store.update_status(msgspec.structs.replace(obj, status=st))


@pytest.fixture
async def fleet(store: KVStore, tmp_path: Path) -> AsyncIterator[Fleet]:
    """One gateway app on two listeners: its API port and its health port."""
    audit = AuditLog(tmp_path / "audit.log")
    app = create_app(store, Authenticator.from_dict(users_doc()), audit=audit, mount_ui=False)
    api = TestServer(app, host="127.0.0.1")
    ops = TestServer(create_ops_app(app), host="127.0.0.1")
    await api.start_server()
    await ops.start_server()
    async with aiohttp.ClientSession() as session:
        gw = Gateway(url=str(api.make_url("")).rstrip("/"), store=store, audit=audit,
                     audit_path=tmp_path / "audit.log", session=session)
        yield Fleet(gw, str(ops.make_url("")).rstrip("/"))
    await ops.close()
    await api.close()


def md(name: str, ns: str | None = "team-a") -> ObjectMeta:
    return ObjectMeta(name=name, namespace=ns)


async def seed(f: Fleet) -> None:
    await f.put(Region(metadata=md("dc1", None), spec=RegionSpec(providers=["baremetal"])),
                phase="Ready", conditions=[cond("Ready", "True", "Running")])
    await f.put(Cluster(metadata=md("prod"), spec=ClusterSpec(
        region="dc1", provider="baremetal", release="mke-3-7-0")),
        phase="Degraded", ready_machines=1, total_machines=2,
        conditions=[cond("Ready", "False", "MachinesNotReady")])
    for name, role in (("prod-cp-0", "control-plane"), ("prod-w-0", "worker")):
        await f.put(Machine(metadata=md(name), spec=MachineSpec(
            cluster="prod", role=role, region="dc1")),  # type: ignore[arg-type]
            phase="Running", conditions=[cond("ProviderReady", "True", "NodeRunning"),
                                         cond("LCMReady", "True", "Ready"),
                                         cond("Ready", "True", "Ready")])
    await f.put(BareMetalHost(metadata=md("bm-0"), spec=BareMetalHostSpec(
        region="dc1", bmc=BMCDetails(address="redfish://10.0.0.1/redfish/v1/Systems/1"),
        boot_mac_address="52:54:00:00:00:01", consumer="uid-of-prod-cp-0")),
        conditions=[cond("BMCReachable", "True", "Connected"),
                    cond("Inspected", "True", "Inspected"), cond("Ready", "True", "Ready")])
    await f.put(ArtifactMirror(metadata=md("mke"), spec=ArtifactMirrorSpec(
        region="dc1", release="mke-3-7-0")), phase="Failed", items_total=10, items_done=7,
        failures=[ArtifactFailure(artifact="a.deb", reason="404"),
                  ArtifactFailure(artifact="b.deb", reason="404")])
    await f.put(OpenStackCredential(metadata=md("os1"), spec=OpenStackCredentialSpec(
        region="dc1", auth=OpenStackAuth(auth_url="https://keystone.example/v3"))),
        conditions=[cond("Valid", "False", "InvalidCredentials"),
                    cond("Ready", "False", "InvalidCredentials")])
    await f.put(VsphereCredential(metadata=md("vc1"), spec=VsphereCredentialSpec(
        region="dc1", server="vcenter.example", username="u")),
        conditions=[cond("Ready", "True", "Authenticated")])  # no Valid: Ready counts
    await f.put(MachineHealthCheck(metadata=md("prod-nodes"), spec=MachineHealthCheckSpec(
        cluster="prod", region="dc1")), expected_machines=2, current_healthy=1,
        remediations_allowed=1,
        targets=[HealthCheckTarget(machine="prod-w-0", state="Rebooted", attempts=1)],
        conditions=[cond("RemediationAllowed", "True", "Allowed"),
                    cond("Ready", "False", "Remediating")])
    await f.put(MachinePool(metadata=md("prod-pool"), spec=MachinePoolSpec(
        cluster="prod", region="dc1", replicas=3)), replicas=3, ready_replicas=2,
        updated_replicas=1, conditions=[cond("Ready", "False", "WaitingForMachines")])
    await f.put(GracefulRebootRequest(metadata=md("prod"), spec=GracefulRebootRequestSpec(
        region="dc1")), phase="InProgress", targets=[
        RebootTarget(machine="prod-cp-0", state="Done"),
        RebootTarget(machine="prod-w-0", state="Draining")])


async def test_the_fleets_state_follows_the_store(fleet: Fleet) -> None:
    await seed(fleet)
    s = await fleet.until(lambda s: value(s, "ccloud_credential_valid", namespace="team-a",
                                          kind="VsphereCredential", credential="vc1",
                                          region="dc1") == 1
                          and named(s, "ccloud_machinehealthcheck_target"),
                          "every object's series")
    prod = {"namespace": "team-a", "cluster": "prod", "region": "dc1"}
    assert value(s, "ccloud_cluster_info", **prod, provider="baremetal",
                 release="mke-3-7-0") == 1
    assert value(s, "ccloud_cluster_ready", **prod) == 0
    phases = {dict(lbl)["phase"]: v for lbl, v in named(s, "ccloud_cluster_phase", **prod).items()}
    assert phases == {"Pending": 0, "Provisioning": 0, "Ready": 0, "Degraded": 1,
                      "Upgrading": 0, "Maintenance": 0, "Rebooting": 0, "Failed": 0,
                      "Deleting": 0}
    assert value(s, "ccloud_cluster_machines", **prod, state="ready") == 1
    assert value(s, "ccloud_cluster_machines", **prod, state="total") == 2
    worker = {**prod, "machine": "prod-w-0", "role": "worker"}
    assert value(s, "ccloud_machine_ready", **worker) == 1
    assert value(s, "ccloud_machine_phase", **worker, phase="Running") == 1
    assert value(s, "ccloud_machine_phase", **worker, phase="Provisioning") == 0
    assert value(s, "ccloud_machine_condition", namespace="team-a", machine="prod-w-0",
                 condition="ProviderReady", status="true", reason="NodeRunning") == 1
    assert value(s, "ccloud_region_ready", region="dc1") == 1
    assert value(s, "ccloud_region_services_down", region="dc1") == 0
    host = {"namespace": "team-a", "host": "bm-0", "region": "dc1"}
    assert value(s, "ccloud_bmh_ready", **host) == 1
    assert value(s, "ccloud_bmh_consumed", **host) == 1
    assert value(s, "ccloud_bmh_condition", **host, condition="BMCReachable", status="true",
                 reason="Connected") == 1
    mirror = {"namespace": "team-a", "mirror": "mke", "region": "dc1"}
    assert [value(s, "ccloud_artifact_mirror_items", **mirror, state=st)
            for st in ("done", "failed", "total")] == [7, 2, 10]
    assert value(s, "ccloud_credential_valid", namespace="team-a",
                 kind="OpenStackCredential", credential="os1", region="dc1") == 0
    check = {"namespace": "team-a", "check": "prod-nodes", "cluster": "prod", "region": "dc1"}
    assert value(s, "ccloud_machinehealthcheck_machines", **check, state="expected") == 2
    assert value(s, "ccloud_machinehealthcheck_machines", **check, state="healthy") == 1
    assert value(s, "ccloud_machinehealthcheck_remediation_allowed", **check) == 1
    assert named(s, "ccloud_machinehealthcheck_target") == {
        frozenset({**check, "machine": "prod-w-0", "state": "Rebooted"}.items()): 1}

    # A machine loses Ready (no host for it), the region loses a service.
    await fleet.set_status(Machine, "prod-w-0", "team-a", conditions=[
        cond("ProviderReady", "False", "NoCapacity"), cond("LCMReady", "True", "Ready"),
        cond("Ready", "False", "NoCapacity")], phase="Provisioning")
    await fleet.set_status(Region, "dc1", None, phase="Degraded", services_down=["lcm"],
                           conditions=[cond("Ready", "False", "ServicesDown")])
    s = await fleet.until(lambda s: value(s, "ccloud_machine_ready", **worker) == 0
                          and value(s, "ccloud_region_ready", region="dc1") == 0,
                          "the machine and the region to turn not Ready")
    assert value(s, "ccloud_machine_phase", **worker, phase="Provisioning") == 1
    assert value(s, "ccloud_machine_phase", **worker, phase="Running") == 0
    conditions = named(s, "ccloud_machine_condition", machine="prod-w-0", condition="Ready")
    assert conditions == {frozenset({"namespace": "team-a", "machine": "prod-w-0",
                                     "condition": "Ready", "status": "false",
                                     "reason": "NoCapacity"}.items()): 1}
    assert value(s, "ccloud_region_services_down", region="dc1") == 1

    # Deleted objects take their series with them.
    await fleet.store.delete(Machine, "prod-w-0", "team-a")
    await fleet.store.delete(BareMetalHost, "bm-0", "team-a")
    s = await fleet.until(lambda s: not named(s, "ccloud_machine_ready", machine="prod-w-0")
                          and not named(s, "ccloud_bmh_ready"), "the deleted objects' series")
    assert not named(s, "ccloud_machine_phase", machine="prod-w-0")
    assert not named(s, "ccloud_machine_condition", machine="prod-w-0")
    assert not named(s, "ccloud_bmh_condition")
    assert value(s, "ccloud_machine_ready", **{**prod, "machine": "prod-cp-0",
                                                "role": "control-plane"}) == 1


async def test_phases_outside_the_known_set_and_missing_conditions(fleet: Fleet) -> None:
    """A phase no controller here writes (the bootstrap's Ready Machine) still shows, one-hot;
    a fresh object with no conditions is not ready and has no condition series."""
    await fleet.put(Machine(metadata=md("boot-0"), spec=MachineSpec(
        cluster="boot", region="dc1", role="control-plane")), phase="Ready")
    await fleet.put(Cluster(metadata=md("fresh"), spec=ClusterSpec(
        region="dc1", provider="simulated", release="mke-3-7-0")))
    s = await fleet.until(lambda s: named(s, "ccloud_cluster_ready", cluster="fresh"),
                          "the objects' series")
    phases = named(s, "ccloud_machine_phase", machine="boot-0")
    assert {dict(k)["phase"]: v for k, v in phases.items() if v} == {"Ready": 1}
    assert len(phases) == 6  # the five known, and its own
    assert value(s, "ccloud_machine_ready", namespace="team-a", cluster="boot",
                 machine="boot-0", role="control-plane", region="dc1") == 0
    assert not named(s, "ccloud_machine_condition", machine="boot-0")
    assert not any(named(s, "ccloud_cluster_phase", cluster="fresh").values())


async def test_machine_health_checks_follow_their_status(fleet: Fleet) -> None:
    """A check's counts, whether it may remediate (its RemediationAllowed condition: absent
    before it has counted, False when too many machines are unhealthy) and one series per
    machine it remediates, whose state label moves with the target's."""
    await fleet.put(MachineHealthCheck(metadata=md("edge"), spec=MachineHealthCheckSpec(
        cluster="edge", region="dc2")))
    check = {"namespace": "team-a", "check": "edge", "cluster": "edge", "region": "dc2"}
    s = await fleet.until(lambda s: named(s, "ccloud_machinehealthcheck_machines", check="edge"),
                          "the fresh check's series")
    assert value(s, "ccloud_machinehealthcheck_remediation_allowed", **check) == 0
    assert value(s, "ccloud_machinehealthcheck_machines", **check, state="expected") == 0
    assert not named(s, "ccloud_machinehealthcheck_target")

    # Two machines remediated, then too many unhealthy: remediation is held.
    await fleet.set_status(MachineHealthCheck, "edge", "team-a", expected_machines=5,
                           current_healthy=2, remediations_allowed=0, targets=[
                               HealthCheckTarget(machine="edge-w-0", state="Rebooting"),
                               HealthCheckTarget(machine="edge-w-1", state="Failed",
                                                 attempts=2)],
                           conditions=[cond("RemediationAllowed", "False", "TooManyUnhealthy")])
    s = await fleet.until(lambda s: value(s, "ccloud_machinehealthcheck_machines", **check,
                                          state="expected") == 5, "the check's new counts")
    assert value(s, "ccloud_machinehealthcheck_machines", **check, state="healthy") == 2
    assert value(s, "ccloud_machinehealthcheck_remediation_allowed", **check) == 0
    targets = {(dict(k)["machine"], dict(k)["state"]): v
               for k, v in named(s, "ccloud_machinehealthcheck_target", **check).items()}
    assert targets == {("edge-w-0", "Rebooting"): 1, ("edge-w-1", "Failed"): 1}

    # Enough came back: allowed again; edge-w-0 rebooted, edge-w-1 healthy (no target).
    await fleet.set_status(MachineHealthCheck, "edge", "team-a", current_healthy=4,
                           remediations_allowed=1, targets=[
                               HealthCheckTarget(machine="edge-w-0", state="Rebooted",
                                                 attempts=1)],
                           conditions=[cond("RemediationAllowed", "True", "Allowed")])
    s = await fleet.until(lambda s: value(s, "ccloud_machinehealthcheck_remediation_allowed",
                                          **check) == 1, "remediation allowed again")
    targets = {(dict(k)["machine"], dict(k)["state"]): v
               for k, v in named(s, "ccloud_machinehealthcheck_target", **check).items()}
    assert targets == {("edge-w-0", "Rebooted"): 1}

    await fleet.store.delete(MachineHealthCheck, "edge", "team-a")
    s = await fleet.until(lambda s: not named(s, "ccloud_machinehealthcheck_machines"),
                          "the deleted check's series")
    assert not named(s, "ccloud_machinehealthcheck_remediation_allowed")
    assert not named(s, "ccloud_machinehealthcheck_target")


async def test_cached_kinds_cost_no_store_call_per_scrape(fleet: Fleet,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The first scrape starts following every kind the fleet series need (the embedded
    store's informers; before it the gateway pays nothing per write for them); from then
    on a scrape reads the caches only, no store call."""
    assert [k.KIND for k in KINDS if fleet.store.cached_all(k) is not None] == [], \
        "nothing followed before anyone scrapes"
    await fleet.scrape()
    await eventually(lambda: all(fleet.store.cached_all(k) is not None for k in KINDS),
                     what="the store to follow every fleet kind")
    calls: list[str] = []
    real = fleet.store.list_all

    async def counting(cls: Any, *a: Any, **kw: Any) -> Any:
        calls.append(cls.KIND)
        return await real(cls, *a, **kw)

    monkeypatch.setattr(fleet.store, "list_all", counting)
    await fleet.put(Cluster(metadata=md("later"), spec=ClusterSpec(
        region="dc1", provider="simulated", release="mke-3-7-0")), phase="Provisioning")
    await fleet.until(lambda s: value(s, "ccloud_cluster_phase", namespace="team-a",
                                      cluster="later", region="dc1", phase="Provisioning"),
                      "a cluster written after the caches started")
    assert calls == []


async def test_a_kind_not_cached_is_read_from_the_store(store: KVStore, nc: NATS) -> None:
    """Without a cache (the Kubernetes store keeps none) every refresh lists the kinds."""
    await store.create(Region(metadata=md("dc2", None)))
    plain = KVStore(nc, bucket=store.bucket, informers=False)
    await plain.start()
    collector = FleetCollector(plain)
    await collector.refresh()
    (region,) = [f for f in collector.collect() if f.name == "ccloud_region_ready"]
    assert [(s.labels, s.value) for s in region.samples] == [({"region": "dc2"}, 0)]


async def test_a_store_that_cannot_be_read_fails_the_scrape(
        fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rather than serving no series, which would read as every object deleted."""
    async def unavailable(*_: Any, **__: Any) -> Any:
        raise Unavailable("nats: no servers available")

    monkeypatch.setattr(fleet.store, "cached_all", lambda _: None)
    monkeypatch.setattr(fleet.store, "list_all", unavailable)
    async with fleet.gw.session.get(fleet.ops_url + "/metrics") as r:
        assert r.status == 503
        assert "no servers available" in await r.text()


async def test_the_public_api_port_serves_no_fleet_series(fleet: Fleet) -> None:
    await seed(fleet)
    await fleet.until(lambda s: named(s, "ccloud_cluster_info"), "the fleet's series")
    code, _ = await fleet.gw.call("GET", ns_path("clusters"))
    assert code == 200
    public = await fleet.scrape(fleet.gw.url)
    assert not {n for n, _ in public} & set(METRICS)
    assert any(n.startswith("ccloud_api_requests") for n, _ in public)
    ops = await fleet.scrape()
    assert any(n.startswith("ccloud_api_requests") for n, _ in ops)  # the gateway's own too
    for probe in ("/healthz", "/readyz"):
        async with fleet.gw.session.get(fleet.ops_url + probe) as r:
            assert r.status == 200


async def test_a_machine_pools_replicas_are_exported(fleet: Fleet) -> None:
    await seed(fleet)
    pool = {"namespace": "team-a", "pool": "prod-pool", "cluster": "prod", "region": "dc1"}
    s = await fleet.until(lambda s: named(s, "ccloud_machinepool_replicas", **pool),
                          "the pool's series")
    assert {dict(k)["state"]: v for k, v in named(s, "ccloud_machinepool_replicas",
                                                   **pool).items()} == {
        "desired": 3, "current": 3, "ready": 2, "updated": 1}


async def test_a_graceful_reboots_machines_are_counted_by_step(fleet: Fleet) -> None:
    await seed(fleet)
    prod = {"namespace": "team-a", "cluster": "prod", "region": "dc1"}
    s = await fleet.until(lambda s: named(s, "ccloud_gracefulreboot_machines", **prod),
                          "the reboot's series")
    assert {dict(k)["state"]: v for k, v in named(s, "ccloud_gracefulreboot_machines",
                                                   **prod).items()} == {
        "Waiting": 0, "Draining": 1, "Rebooting": 0, "Uncordoning": 0, "Done": 1,
        "Skipped": 0, "Failed": 0}


async def test_every_declared_metric_is_exported(fleet: Fleet) -> None:
    """The names the chart's alerts are checked against (METRICS) are the ones served."""
    await seed(fleet)
    s = await fleet.until(lambda s: named(s, "ccloud_credential_valid", credential="vc1")
                          and named(s, "ccloud_machinehealthcheck_target")
                          and named(s, "ccloud_machinepool_replicas")
                          and named(s, "ccloud_gracefulreboot_machines"),
                          "the fleet's series")
    served = {n: set() for n in METRICS}
    for n, labels in s:
        if n in served:
            served[n] |= {k for k, _ in labels}
    assert {n: sorted(v) for n, v in served.items()} == {
        n: sorted(labels) for n, (_, labels) in METRICS.items()}


async def test_module_entrypoint_serves_fleet_metrics_on_the_health_port(
    nats_server: NatsServer, tmp_path: Path, prefix: str, nc: NATS
) -> None:
    """``python -m services.api`` serves the fleet on CCLOUD_HEALTH_PORT, not the API port."""
    port, health = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.api", "--nats-url", nats_server.url,
        "--prefix", prefix, "--port", str(port), "--data-dir", str(tmp_path),
        cwd=REPO, env={**os.environ, "CCLOUD_HEALTH_PORT": str(health)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    store = KVStore(nc, bucket=f"{prefix}-objects")
    try:
        async with aiohttp.ClientSession() as session:

            async def get(url: str) -> str | None:
                assert proc.returncode is None, "gateway exited early"
                try:
                    async with session.get(url) as r:
                        return await r.text() if r.status == 200 else None
                except aiohttp.ClientConnectionError:
                    return None

            await eventually(lambda: get(f"http://127.0.0.1:{port}/readyz"), timeout=20,
                             what="the gateway to be ready")
            await store.start()
            region = await store.create(Region(metadata=md("dc9", None)))
            await store.update_status(msgspec.structs.replace(region, status=RegionStatus(
                conditions=[cond("Ready", "True", "Running")])))

            async def region_ready() -> bool:
                text = await get(f"http://127.0.0.1:{health}/metrics")
                return text is not None and 'ccloud_region_ready{region="dc9"} 1.0' in text

            await eventually(region_ready, timeout=20, what="the region on the health port")
            public = await get(f"http://127.0.0.1:{port}/metrics")
            assert public is not None and "ccloud_region_ready" not in public
    finally:
        await store.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_key_value(f"{prefix}-objects")
    assert proc.returncode == 0, out.decode()


async def test_the_health_port_must_not_be_the_api_port(nats_server: NatsServer,
                                                        tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.api", "--nats-url", nats_server.url,
        "--port", str(port), "--data-dir", str(tmp_path), cwd=REPO,
        env={**os.environ, "CCLOUD_HEALTH_PORT": str(port)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert "CCLOUD_HEALTH_PORT" in out.decode() and "must differ" in out.decode()
