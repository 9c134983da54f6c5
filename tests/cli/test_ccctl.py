"""``ccctl`` end to end: apply, get, describe, delete, watch, wait and friendly errors."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from pathlib import Path

import msgspec
import yaml

from services.cli.main import Ctx, describe, main, object_path, recorded_events
from shared.models import (
    Cluster,
    Condition,
    LCMMachine,
    LCMMachineSpec,
    ObjectMeta,
    OpenStackCredential,
    Region,
    StateItem,
    StateItemStatus,
    now,
)
from shared.natsserver import free_port
from shared.runtime import conditions, status_writer
from shared.runtime import recorder as rec
from tests.api.conftest import TOKENS
from tests.cli.conftest import Ctl
from tests.waiting import eventually

MANIFEST = """\
apiVersion: kaas.containercloud.dev/v1alpha1
kind: Region
metadata:
  name: local
spec:
  providers: [simulated]
---
apiVersion: kaas.containercloud.dev/v1alpha1
kind: Cluster
metadata:
  name: demo
  labels: {env: dev}
spec:
  region: local
  provider: simulated
  release: mke-1-0
---
kind: OpenStackCredential
metadata:
  name: os1
spec:
  region: local
  auth: {authUrl: "http://keystone:5000/v3", username: demo, password: hunter2-secret}
"""


async def _ready(ctl: Ctl, name: str = "demo", status: str = "True") -> None:
    obj = await ctl.gw.store.get(Cluster, name, "team-a")
    st = msgspec.structs.replace(obj.status, phase="Ready", conditions=[
        Condition(type="Ready", status=status, reason="AllMachinesReady",
                  message="2/2 machines ready", last_transition_time=now())])
    await ctl.gw.store.update_status(msgspec.structs.replace(obj, status=st))


async def _watchers(ctl: Ctl) -> int:
    """Open watches on the KV bucket (each is an ordered JetStream consumer)."""
    info = await ctl.gw.store._js.stream_info(f"KV_{ctl.gw.store.bucket}")
    return info.state.consumer_count


async def test_apply_create_unchanged_configured(ctl: Ctl, tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    r = await ctl("apply", "-f", str(path))
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        "region.kaas.containercloud.dev/local created",
        "cluster.kaas.containercloud.dev/demo created",
        "openstackcredential.kaas.containercloud.dev/os1 created",
    ]
    cred = await ctl.gw.store.get(OpenStackCredential, "os1", "team-a")
    assert cred.spec.auth.password == "hunter2-secret"
    await _ready(ctl)
    r = await ctl("apply", "-f", "-", stdin=MANIFEST.split("---\n")[1])
    assert r.out.strip() == "cluster.kaas.containercloud.dev/demo unchanged", r.err
    changed = MANIFEST.replace("release: mke-1-0", "release: mke-1-1")
    r = await ctl("apply", "-f", "-", stdin=changed)
    assert r.code == 0
    assert "cluster.kaas.containercloud.dev/demo configured" in r.out
    stored = await ctl.gw.store.get(Cluster, "demo", "team-a")
    assert stored.spec.release == "mke-1-1" and stored.metadata.generation == 2
    assert stored.status.phase == "Ready"  # apply never touches status
    await ctl.gw.store.get(Region, "local")


async def test_apply_reports_field_path_and_continues(ctl: Ctl) -> None:
    bad = MANIFEST.replace("region: local\n  provider", "region: Not_Valid\n  provider")
    r = await ctl("apply", "-f", "-", stdin=bad)
    assert r.code == 1
    assert "Error from server (Invalid)" in r.err and "spec.region" in r.err
    assert "region.kaas.containercloud.dev/local created" in r.out
    assert "openstackcredential.kaas.containercloud.dev/os1 created" in r.out
    assert "Traceback" not in r.err


async def test_get_table_yaml_json_aliases(ctl: Ctl) -> None:
    await ctl("apply", "-f", "-", stdin=MANIFEST)
    await _ready(ctl)
    for alias in ("cl", "clusters", "Cluster", "cluster"):
        r = await ctl("get", alias)
        assert r.code == 0, r.err
        header, row = r.out.splitlines()
        assert header.split() == ["NAME", "REGION", "PROVIDER", "RELEASE", "PHASE", "READY", "AGE"]
        assert row.split()[:6] == ["demo", "local", "simulated", "mke-1-0", "Ready", "True"]
    r = await ctl("get", "cl", "demo", "-o", "yaml")
    doc = yaml.safe_load(r.out)
    assert doc["kind"] == "Cluster" and doc["metadata"]["name"] == "demo"
    r = await ctl("get", "osc", "-o", "json")
    data = json.loads(r.out)
    assert data["items"][0]["spec"]["auth"]["password"] == ""
    assert "hunter2" not in r.out
    r = await ctl("get", "cl", "-l", "env=prod")
    assert r.code == 0 and r.out == "" and "No resources found" in r.err
    r = await ctl("get", "cl", "-A", "-o", "wide")
    assert r.out.splitlines()[0].split()[0] == "NAMESPACE" and "env=dev" in r.out
    r = await ctl("get", "regions", "-o", "name")
    assert r.out.strip() == "region.kaas.containercloud.dev/local"
    r = await ctl("get", "gizmos")
    assert r.code == 1 and "gizmos" in r.err


async def test_server_dry_run_checks_and_stores_nothing(ctl: Ctl) -> None:
    r = await ctl("apply", "-f", "-", "--dry-run=server", stdin=MANIFEST)
    assert r.code == 0, r.err
    assert "cluster.kaas.containercloud.dev/demo created (server dry run)" in r.out
    r = await ctl("get", "clusters")
    assert r.out == "" and "No resources found" in r.err, "nothing stored"
    bad = MANIFEST.replace("region: local\n  provider", "region: Not_Valid\n  provider")
    r = await ctl("apply", "-f", "-", "--dry-run=server", stdin=bad)
    assert r.code == 1 and "spec.region" in r.err, "the server's checks still answer"

    await ctl("apply", "-f", "-", stdin=MANIFEST)
    r = await ctl("apply", "-f", "-", "--dry-run=server",
                  stdin=MANIFEST.replace("release: mke-1-0", "release: mke-1-1"))
    assert "cluster.kaas.containercloud.dev/demo configured (server dry run)" in r.out, r.err
    r = await ctl("delete", "cluster", "demo", "--dry-run=server")
    assert r.code == 0 and '"demo" deleted (server dry run)' in r.out, r.err
    stored = await ctl.gw.store.get(Cluster, "demo", "team-a")
    assert stored.spec.release == "mke-1-0" and stored.metadata.deletion_timestamp is None


async def test_get_several_kinds_at_once(ctl: Ctl) -> None:
    await ctl("apply", "-f", "-", stdin=MANIFEST)
    r = await ctl("get", "clusters,osc")
    assert r.code == 0, r.err
    first, second = r.out.split("\n\n")
    assert first.splitlines()[0].split()[:2] == ["NAME", "REGION"] and "demo" in first
    assert second.splitlines()[0].split()[2] == "AUTH-URL" and "os1" in second
    r = await ctl("get", "clusters,osc", "-o", "json")
    assert [i["kind"] for i in json.loads(r.out)["items"]] == ["Cluster", "OpenStackCredential"]
    r = await ctl("get", "clusters,gizmos")
    assert r.code == 1 and '"gizmos"' in r.err and r.out == "", "no half answer"
    r = await ctl("get", "clusters,osc", "demo")
    assert r.code == 1 and "give no names" in r.err


async def _transitions(ctl: Ctl, *ready: bool) -> None:
    """Status writes as the LCM cluster controller makes them, recording events."""
    recorder = rec.Recorder(ctl.gw.nc, prefix=ctl.gw.prefix, source="test")
    with rec.recording(recorder, "lcm-cluster"):
        for up in ready:
            obj = await ctl.gw.store.get(Cluster, "demo", "team-a")
            async with status_writer(ctl.gw.store, obj) as c:
                if up:
                    conditions.mark_true(c.status, "Ready", "AllMachinesReady",
                                         "2/2 machines ready")
                else:
                    conditions.mark_false(c.status, "Ready", "NoCapacity", "1 machine waits")
    await recorder.stop()


async def test_describe_shows_conditions_and_events(ctl: Ctl) -> None:
    await ctl("apply", "-f", "-", stdin=MANIFEST)
    r = await ctl("describe", "cluster", "demo")
    assert r.out.split("Events:\n")[1].strip() == "<none>"
    await _transitions(ctl, True, False, True, False)
    r = await ctl("describe", "cluster", "demo")
    assert r.code == 0, r.err
    assert "Name:         demo" in r.out and "Namespace:    team-a" in r.out
    assert "release: mke-1-0" in r.out
    cond = r.out.split("Conditions:")[1].split("Events:")[0]
    assert "Ready" in cond and "NoCapacity" in cond and "1 machine waits" in cond
    table = r.out.split("Events:\n")[1].splitlines()
    assert table[0].split() == ["TYPE", "REASON", "AGE", "FROM", "MESSAGE"]
    rows = [line.split(None, 2) for line in table[1:]]
    # kubectl's order, oldest first; the repeated transition is one row counted twice.
    assert [row[:2] for row in rows] == [["Normal", "AllMachinesReady"],
                                         ["Normal", "AllMachinesReady"],
                                         ["Warning", "NoCapacity"]]
    assert table[1].endswith("lcm-cluster   Ready True: 2/2 machines ready")
    assert table[2].endswith("Ready True (was False): 2/2 machines ready")
    assert "(x2 over " in table[3] and table[3].endswith("Ready False (was True): 1 machine waits")
    assert "(x" not in table[1] + table[2]


async def test_describe_falls_back_to_conditions_without_served_events(ctl: Ctl) -> None:
    """An older gateway has no events path (404): recent transitions stand in for events."""
    await ctl("apply", "-f", "-", stdin=MANIFEST)
    await _ready(ctl)
    cli = Ctx(argparse.Namespace(config=str(ctl.config), server=None, token=TOKENS["ops"],
                                 request_timeout=10.0), io.StringIO(), io.StringIO())
    absent = await asyncio.to_thread(recorded_events, cli, object_path(Cluster, "team-a", "nope"))
    assert absent is None
    obj = await asyncio.to_thread(cli.client.request, "GET",
                                  object_path(Cluster, "team-a", "demo"))
    text = describe(Cluster, obj, absent)
    assert "AllMachinesReady: Ready=True 2/2 machines ready" in text.split("Events:")[1]
    assert "<unavailable: boom>" in describe(Cluster, obj, "boom")


async def test_describe_lcmmachine_lists_state_items_in_order(ctl: Ctl) -> None:
    items = [StateItem(name="prepare-host", phase="prepare", version="3.7.0"),
             StateItem(name="install-runtime", phase="prepare", version="1.7"),
             StateItem(name="mke-join", phase="deploy", version="3.7.0")]
    lm = await ctl.gw.store.create(LCMMachine(
        metadata=ObjectMeta(name="demo-cp-0", namespace="team-a"),
        spec=LCMMachineSpec(cluster="demo", machine="demo-cp-0", region="local",
                            state_items=items)))
    lm.status.state_items = {
        "prepare-host": StateItemStatus(state="Done", attempts=1),
        "install-runtime": StateItemStatus(state="Failed", attempts=3,
                                           message="dpkg: error processing containerd"),
    }
    await ctl.gw.store.update_status(lm)
    r = await ctl("describe", "lcmmachine", "demo-cp-0")
    assert r.code == 0, r.err
    table = r.out.split("State items:\n")[1].split("Events:")[0].splitlines()
    assert table[0].split() == ["ITEM", "PHASE", "VERSION", "STATE", "ATTEMPTS", "MESSAGE"]
    assert [row.split()[:5] for row in table[1:]] == [
        ["prepare-host", "prepare", "3.7.0", "Done", "1"],
        ["install-runtime", "prepare", "1.7", "Failed", "3"],
        ["mke-join", "deploy", "3.7.0", "Pending", "0"],
    ]
    assert table[2].endswith("dpkg: error processing containerd")
    r = await ctl("get", "lcmmachines")
    assert r.out.splitlines()[0].split()[4] == "ITEMS"
    assert r.out.splitlines()[1].split()[:5] == ["demo-cp-0", "demo", "worker", "<none>", "1/3"]
    await ctl("apply", "-f", "-", stdin=MANIFEST)
    r = await ctl("describe", "cluster", "demo")
    assert r.code == 0 and "State items:" not in r.out


async def test_delete_and_friendly_errors(ctl: Ctl) -> None:
    await ctl("apply", "-f", "-", stdin=MANIFEST)
    r = await ctl("delete", "cl", "demo")
    assert r.code == 0 and 'cluster.kaas.containercloud.dev "demo" deleted' in r.out
    r = await ctl("delete", "cl", "demo")
    assert r.code == 1 and "Error from server (NotFound)" in r.err
    r = await ctl("delete", "cl", "demo", "--ignore-not-found")
    assert r.code == 0
    r = await ctl("delete", "osc", "os1", user="wally")
    assert r.code == 1 and "Forbidden" in r.err and 'User "wally"' in r.err
    r = await ctl("apply", "-f", "-", stdin=MANIFEST.split("---\n")[1])
    r = await ctl("apply", "-f", "-", stdin=MANIFEST.split("---\n")[1])
    assert "unchanged" in r.out
    r = await ctl("get", "cl", "--token", "wrong")
    assert r.code == 1 and "Unauthorized" in r.err and "check the token" in r.err
    r = await ctl("get", "cl", "--server", f"http://127.0.0.1:{free_port()}")
    assert r.code == 1 and "cannot reach the API server" in r.err
    assert "Traceback" not in r.err


async def test_delete_with_finalizers_reports_pending(ctl: Ctl) -> None:
    held = MANIFEST.split("---\n")[1].replace("labels: {env: dev}", "finalizers: [test/hold]")
    await ctl("apply", "-f", "-", stdin=held)
    r = await ctl("delete", "cluster/demo")
    assert r.code == 0 and "deletion started" in r.out


async def test_wait_for_condition_and_timeout(ctl: Ctl) -> None:
    await ctl("apply", "-f", "-", stdin=MANIFEST)
    await _ready(ctl, status="False")
    waiter = asyncio.create_task(ctl("wait", "cl/demo", "--for=condition=Ready",
                                     "--timeout=20s"))
    await eventually(lambda: _watchers(ctl), what="the waiter's watch on the store")
    await _ready(ctl, status="True")
    r = await asyncio.wait_for(waiter, 30)
    assert r.code == 0, r.err
    assert "cluster.kaas.containercloud.dev/demo condition met" in r.out
    r = await ctl("wait", "cl", "demo", "--for=condition=Ready=False", "--timeout=1s")
    assert r.code == 1 and "timed out after 1s" in r.err and "clusters/demo" in r.err
    r = await ctl("wait", "cl", "--all", "--for=condition=Ready", "--timeout=5s")
    assert r.code == 0 and "demo condition met" in r.out, r.err
    r = await ctl("wait", "cl", "--all", "-n", "empty", "--for=condition=Ready", "--timeout=1s")
    assert r.code == 1 and "no clusters found" in r.err
    deleter = asyncio.create_task(ctl("wait", "cl", "demo", "--for=delete", "--timeout=20s"))
    await ctl("delete", "cl", "demo")
    r = await asyncio.wait_for(deleter, 30)
    assert r.code == 0 and "deleted" in r.out


async def test_watch_streams_changes(ctl: Ctl) -> None:
    await ctl("apply", "-f", "-", stdin=MANIFEST.split("---\n")[1])
    live = io.StringIO()
    watcher = asyncio.create_task(ctl.run(live, "watch", "cl", "-o", "json", "--timeout=3s"))
    await eventually(lambda: '"ADDED"' in live.getvalue(), what="the initial ADDED event")
    await _ready(ctl)
    r = await asyncio.wait_for(watcher, 30)
    assert r.code == 0, r.err
    events = [json.loads(line) for line in r.out.splitlines()]
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "demo"
    assert any(e["type"] == "MODIFIED" and e["object"]["status"].get("phase") == "Ready"
               for e in events)


async def test_get_w_lists_then_follows(ctl: Ctl) -> None:
    await ctl("apply", "-f", "-", stdin=MANIFEST.split("---\n")[1])
    live = io.StringIO()
    watcher = asyncio.create_task(ctl.run(live, "get", "cl", "-w", "--timeout=3s"))
    await eventually(lambda: "demo" in live.getvalue(), what="the listed cluster")
    await _ready(ctl)
    r = await asyncio.wait_for(watcher, 30)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split()[:2] == ["EVENT", "NAME"]
    assert lines[1].split()[:2] == ["ADDED", "demo"]
    assert any(line.split()[0] == "MODIFIED" and "Ready" in line for line in lines[2:])
    # MODIFIED is wider than ADDED: the EVENT column is that wide from the header on.
    assert {line.index("demo") for line in lines[1:]} == {lines[0].index("NAME")}
    r = await ctl("get", "cl", "-w", "-o", "name")
    assert r.code == 1 and "get -w takes one kind" in r.err


async def test_watch_table_keeps_columns_aligned(ctl: Ctl) -> None:
    """Rows stream one at a time; each starts its columns where the header's start."""
    await ctl("apply", "-f", "-", stdin=MANIFEST.split("---\n")[1])
    live = io.StringIO()
    watcher = asyncio.create_task(ctl.run(live, "watch", "cl", "--timeout=3s"))
    await eventually(lambda: "ADDED" in live.getvalue(), what="the initial ADDED row")
    long_name = MANIFEST.split("---\n")[1].replace("name: demo", "name: a-much-longer-name")
    await ctl("apply", "-f", "-", stdin=long_name)
    r = await asyncio.wait_for(watcher, 30)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["EVENT", "NAME", "REGION", "PROVIDER", "RELEASE", "PHASE",
                                "READY", "AGE"]
    assert [ln.split()[:2] for ln in lines[1:]] == [["ADDED", "demo"],
                                                     ["ADDED", "a-much-longer-name"]]
    # Each later row is padded at least as wide as the rows before it.
    starts = [lines[1].index("local"), lines[2].index("local")]
    assert starts[1] >= starts[0] >= lines[0].index("REGION")


async def test_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    err = io.StringIO()
    code = main(["--config", str(tmp_path / "absent.yaml"), "get", "cl"], err=err)
    assert code == 1 and "does not exist" in err.getvalue()
    code = main(["get"], err=io.StringIO())
    assert code == 2


def test_load_documents_from_a_folder_in_name_order(tmp_path):
    import io

    import pytest

    from services.cli.errors import CliError
    from services.cli.main import load_documents

    (tmp_path / "b.yaml").write_text("kind: Region\nmetadata: {name: b}\n")
    (tmp_path / "a.yml").write_text("kind: Region\nmetadata: {name: a}\n---\n"
                                    "kind: Region\nmetadata: {name: a2}\n")
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text("kind: Region\nmetadata: {name: c}\n")
    docs = load_documents(str(tmp_path), io.StringIO())
    assert [d["metadata"]["name"] for _, d in docs] == ["a", "a2", "b"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(CliError, match="no manifests"):
        load_documents(str(tmp_path / "empty"), io.StringIO())


def test_table_shows_model_defaults_the_wire_omits():
    from services.cli.output import table
    from shared.models import Machine

    wire = {"apiVersion": "kaas.containercloud.dev/v1alpha1", "kind": "Machine",
            "metadata": {"name": "w0", "namespace": "default"},
            "spec": {"cluster": "c", "region": "local"}}
    out = table(Machine, [wire], all_namespaces=False, wide=False)
    header, row = out.splitlines()
    assert row.split()[header.split().index("ROLE")] == "worker"


def test_phase_and_ready_columns_only_where_a_controller_writes_them():
    """A release or a key never gets a phase or Ready: no "<none>"/"Unknown" columns for
    them; a host or credential has Ready (its checks summed up) but no phase."""
    from services.cli.output import table
    from shared.models import MACHINE_LABEL, BareMetalHost, ClusterRelease, OpenStackCredential

    def header(cls, wire):
        return table(cls, [wire], all_namespaces=False, wide=False).splitlines()[0].split()

    meta = {"name": "x", "namespace": "default"}
    release = {"metadata": {"name": "mke-3-7-0"},
               "spec": {"version": "3.7.0", "mkeVersion": "3.7.0"}}
    assert header(ClusterRelease, release) == ["NAME", "VERSION", "MKE", "AGE"]
    host = {"metadata": meta, "spec": {"region": "local", "bmc": {"address": "redfish://b/1"},
                                       "bootMacAddress": "52:54:00:00:00:01"},
            "status": {"conditions": [{"type": "Ready", "status": "False",
                                       "reason": "InvalidCredentials"}]}}
    assert header(BareMetalHost, host) == ["NAME", "STATE", "POWER", "CONSUMER", "READY", "AGE"]
    row = table(BareMetalHost, [host], all_namespaces=False, wide=False).splitlines()[1]
    assert row.split()[3:5] == ["<none>", "False"]
    # A claimed host shows its Machine by name where the claim labelled it, else the uid.
    host["spec"]["consumer"] = "3f1c-uid"
    row = table(BareMetalHost, [host], all_namespaces=False, wide=False).splitlines()[1]
    assert row.split()[3] == "3f1c-uid"
    host["metadata"] = {**meta, "labels": {MACHINE_LABEL: "demo-cp-0"}}
    row = table(BareMetalHost, [host], all_namespaces=False, wide=False).splitlines()[1]
    assert row.split()[3] == "demo-cp-0"
    cred = {"metadata": meta, "spec": {"region": "local",
                                       "auth": {"authUrl": "http://keystone:5000/v3"}}}
    assert header(OpenStackCredential, cred) == ["NAME", "REGION", "AUTH-URL", "READY", "AGE"]


def test_progress_columns_of_mirrors_attached_clusters_and_update_groups():
    from services.cli.output import table_rows
    from shared.models import ArtifactMirror, AttachedCluster, UpdateGroup

    meta = {"name": "x", "namespace": "default"}
    mirror = {"metadata": meta, "spec": {"region": "dc1", "release": "mke-3-7-0"},
              "status": {"phase": "Mirroring", "itemsDone": 3, "itemsTotal": 8}}
    header, row = table_rows(ArtifactMirror, [mirror], all_namespaces=False, wide=False)
    assert dict(zip(header, row, strict=True))["ITEMS"] == "3/8"
    mirror["status"] = {}
    _, row = table_rows(ArtifactMirror, [mirror], all_namespaces=False, wide=False)
    assert row[header.index("ITEMS")] == "<none>", "not counted yet"
    attached = {"metadata": meta, "spec": {"region": "dc1", "endpoint": "https://mke:6443"},
                "status": {"kubernetesVersion": "v1.27.4", "nodes": ["a", "b", "c"],
                           "readyNodes": 2}}
    header, row = table_rows(AttachedCluster, [attached], all_namespaces=False, wide=False)
    cells = dict(zip(header, row, strict=True))
    assert (cells["VERSION"], cells["NODES"]) == ("v1.27.4", "2/3")
    group = {"metadata": meta, "spec": {"cluster": "demo", "index": 1}}
    header, row = table_rows(UpdateGroup, [group], all_namespaces=False, wide=False)
    assert header == ["NAME", "CLUSTER", "INDEX", "CONCURRENT", "AGE"]
    assert row[1:4] == ["demo", "1", "1"], "the default concurrency shows"


def test_health_checks_have_a_short_name_columns_and_their_targets_described():
    from services.api.discovery import resolve
    from services.cli.main import describe
    from services.cli.output import table_rows
    from shared.models import MachineHealthCheck

    assert resolve("mhc") is MachineHealthCheck
    meta = {"name": "workers", "namespace": "default"}
    check = {"metadata": meta, "spec": {"cluster": "demo", "region": "local"},
             "status": {"expectedMachines": 5, "currentHealthy": 4,
                        "conditions": [{"type": "Ready", "status": "False"}],
                        "targets": [{"machine": "demo-w1", "state": "Rebooted", "attempts": 1,
                                     "lastAttemptTime": "2020-01-01T00:00:00.250Z",
                                     "reason": "UnhealthyCondition",
                                     "message": "Ready False for more than 300s"}]}}
    header, row = table_rows(MachineHealthCheck, [check], all_namespaces=False, wide=False)
    assert header == ["NAME", "CLUSTER", "MAX-UNHEALTHY", "HEALTHY", "REMEDIATING", "READY",
                      "AGE"]
    assert row[1:6] == ["demo", "40%", "4/5", "1", "False"], "the default maxUnhealthy shows"
    text = describe(MachineHealthCheck, check, [])
    lines = text.split("Remediation:\n")[1].split("Events:")[0].splitlines()
    assert lines[0].split() == ["MACHINE", "STATE", "REBOOTS", "LAST", "REASON", "MESSAGE"]
    assert lines[1].split()[:3] == ["demo-w1", "Rebooted", "1"]
    assert lines[1].split()[3].endswith("d"), "the attempt's age, from a time with millis"
    assert "Ready False for more than 300s" in lines[1]


def test_graceful_reboots_have_a_short_name_progress_columns_and_their_machines_described():
    from services.api.discovery import resolve
    from services.cli.main import describe
    from services.cli.output import table_rows
    from shared.models import GracefulRebootRequest

    assert resolve("grr") is GracefulRebootRequest
    request = {"metadata": {"name": "demo", "namespace": "default"}, "spec": {"region": "local"},
               "status": {"phase": "InProgress", "rebooted": 1, "total": 3,
                          "targets": [
                              {"machine": "demo-cp-0", "state": "Done",
                               "startedAt": "2020-01-01T00:00:00.250Z",
                               "finishedAt": "2020-01-01T00:01:00.000Z"},
                              {"machine": "demo-w0", "state": "Draining",
                               "startedAt": "2020-01-01T00:01:00.000Z",
                               "message": "drain: cannot evict pod default/web-1"},
                              {"machine": "demo-w1"}]}}  # Waiting: the default, left out
    header, row = table_rows(GracefulRebootRequest, [request], all_namespaces=False, wide=False)
    assert header == ["NAME", "REBOOTED", "NOW", "PHASE", "READY", "AGE"]
    assert row[1:4] == ["1/3", "demo-w0:draining", "InProgress"]
    request["status"]["targets"][1]["state"] = "Done"
    _, row = table_rows(GracefulRebootRequest, [request], all_namespaces=False, wide=False)
    assert row[2] == "<none>", "nothing in flight"
    text = describe(GracefulRebootRequest, request, [])
    lines = text.split("Machines:\n")[1].split("Events:")[0].splitlines()
    assert lines[0].split() == ["MACHINE", "STATE", "STARTED", "FINISHED", "MESSAGE"]
    assert lines[1].split()[:2] == ["demo-cp-0", "Done"] and lines[1].split()[2].endswith("d")
    assert "drain: cannot evict pod default/web-1" in lines[2]
    assert lines[3].split() == ["demo-w1", "Waiting", "<none>", "<none>"]


def test_a_failure_says_each_thing_once():
    from services.cli.client import describe_failure

    one = {"reason": "Invalid", "message": "Cluster 'os1' is invalid: spec.provider: region "
           "'local' offers baremetal, not openstack",
           "details": {"causes": [{"field": "spec.provider",
                                   "message": "region 'local' offers baremetal, not openstack"}]}}
    assert describe_failure(422, one) == "Error from server (Invalid): " + one["message"]
    two = {"reason": "Invalid", "message": "Cluster 'c' is invalid",
           "details": {"causes": [{"field": "spec.region", "message": "bad"},
                                  {"field": "spec.release", "message": "missing"}]}}
    assert describe_failure(422, two).splitlines()[1:] == [
        "  spec.region: bad", "  spec.release: missing"]


async def test_patch_changes_fields_without_a_manifest(ctl: Ctl) -> None:
    await ctl("apply", "-f", "-", stdin=MANIFEST)
    r = await ctl("patch", "cluster", "demo", "-p", '{"spec": {"paused": true}}')
    assert (r.code, r.out.strip()) == (0, "cluster.kaas.containercloud.dev/demo patched"), r.err
    stored = await ctl.gw.store.get(Cluster, "demo", "team-a")
    assert stored.spec.paused and stored.spec.release == "mke-1-0", "other fields kept"
    r = await ctl("patch", "cluster/demo", "-p", "{spec: {paused: true}}")  # YAML flow style
    assert r.out.strip() == "cluster.kaas.containercloud.dev/demo unchanged", r.err
    r = await ctl("patch", "cluster", "demo", "-p", '{"spec": {"paused": false}}',
                  "--dry-run=server")
    assert r.out.strip() == "cluster.kaas.containercloud.dev/demo patched (server dry run)"
    assert (await ctl.gw.store.get(Cluster, "demo", "team-a")).spec.paused, "nothing stored"

    # Bad input: the server's reason or the CLI's, never a traceback, nothing written.
    before = await ctl.gw.store.get(Cluster, "demo", "team-a")
    r = await ctl("patch", "cluster", "demo", "-p", '{"spec": {"region": "Not_Valid"}}')
    assert r.code == 1 and "spec.region" in r.err
    for args, said in ((["-p", "{not json"], "not JSON or YAML"),
                       (["-p", "[]"], "non-empty object"),
                       (["-p", '{"status": {"phase": "Ready"}}'], "written by controllers")):
        r = await ctl("patch", "cluster", "demo", *args)
        assert r.code != 0 and said in r.err and "Traceback" not in r.err, (args, r.err)
    r = await ctl("patch", "cluster", "nope", "-p", '{"spec": {"paused": true}}')
    assert r.code == 1 and "not found" in r.err.lower()
    r = await ctl("patch", "cluster", "-p", '{"spec": {"paused": true}}')
    assert r.code != 0 and "one object" in r.err
    after = await ctl.gw.store.get(Cluster, "demo", "team-a")
    assert after.metadata.resource_version == before.metadata.resource_version


def test_machine_pools_have_a_short_name_and_replica_columns():
    from services.api.discovery import resolve
    from services.cli.output import table_rows
    from shared.models import MachinePool

    assert resolve("mp") is MachinePool
    pools = [{"metadata": {"name": n, "namespace": "default"},
              "spec": {"cluster": "demo", "region": "local", **spec}, "status": status}
             for n, spec, status in (
                 ("one", {}, {}),  # replicas left at its default, nothing counted yet
                 ("web", {"replicas": 3}, {"replicas": 3, "readyReplicas": 2,
                                           "updatedReplicas": 1, "phase": "ScalingUp"}))]
    header, *rows = table_rows(MachinePool, pools, all_namespaces=False, wide=False)
    assert header == ["NAME", "CLUSTER", "REPLICAS", "READY-MACHINES", "UP-TO-DATE", "PHASE",
                      "READY", "AGE"]
    assert rows[0][1:5] == ["demo", "1", "0/1", "0"], "the default replicas show"
    assert rows[1][1:6] == ["demo", "3", "2/3", "1", "ScalingUp"]
    from shared.models import POOL_LABEL, Machine
    machines = [{"metadata": {"name": n, "namespace": "default", "labels": labels},
                 "spec": {"cluster": "demo", "region": "local"}}
                for n, labels in (("web-0", {POOL_LABEL: "web"}), ("m", {}))]
    header, *rows = table_rows(Machine, machines, all_namespaces=False, wide=True)
    at = header.index("POOL")
    assert [r[at] for r in rows] == ["web", "<none>"]
