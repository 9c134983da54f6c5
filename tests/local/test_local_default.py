"""The local default end to end, as a new user meets it (issue 12).

``ccloud up`` runs the whole region: NATS, the store, every service, the Redfish emulator
with its hosts, and the node launcher starting real LCM agent processes. The test applies
the examples with ``ccctl``, restarts the whole ``up`` midway, and follows the cluster
through Ready, a capacity shortfall, an upgrade and deletion.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.local.up import REPO, Up, ctl, get_json

pytestmark = pytest.mark.slow


def wait_for(probe, *, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def items_done(lcm: dict) -> int:
    items = (lcm.get("status") or {}).get("stateItems") or {}
    return sum(1 for s in items.values() if s.get("state") == "Done")


@pytest.mark.timeout(1200)
def test_apply_restart_ready_upgrade_delete(tmp_path: Path) -> None:
    up = Up(tmp_path / "data")
    banner = up.start()
    assert "token" in banner and str(up.ports["port"]) in banner
    try:
        out = ctl(up, "apply", "-f", str(REPO / "examples")).stdout
        assert "cluster.kaas.containercloud.dev/demo created" in out
        assert out.count("machine.kaas.containercloud.dev/") == 5

        # Progress is visible per machine and per state item; restart midway through it.
        wait_for(lambda: sum(items_done(m) > 0 for m in get_json(up, "lcmmachines")["items"]) >= 1,
                 timeout=180, what="a state item done on some machine")
        before = {m["metadata"]["name"]: m["metadata"]["uid"]
                  for m in get_json(up, "machines")["items"]}
        assert up.stop() == 0
        assert "stopped" in "".join(up.output)
        second = up.start()
        assert "in " + str(up.data / "admin-token") in second, "second up reuses the data"

        ctl(up, "wait", "cluster/demo", "--for=condition=Ready", "--timeout=300s", timeout=320)
        machines = get_json(up, "machines")["items"]
        assert {m["metadata"]["name"]: m["metadata"]["uid"] for m in machines} == before
        ctl(up, "wait", "machines", "--all", "--for=condition=Ready", "--timeout=60s")
        hosts = get_json(up, "baremetalhosts")["items"]
        consumers = [h["spec"].get("consumer") for h in hosts if h["spec"].get("consumer")]
        assert sorted(consumers) == sorted(before.values()), "one host per machine, no duplicates"
        for lcm in get_json(up, "lcmmachines")["items"]:
            status = lcm["status"]
            assert status["phase"] == "Ready"
            assert all(s["state"] == "Done" for s in status["stateItems"].values())
            assert len(status["stateItems"]) == len(lcm["spec"]["stateItems"])
        cluster = get_json(up, "cluster", "demo")
        assert cluster["status"]["readyMachines"] == 5
        nodes = sorted(p.name for p in (up.data / "nodes").iterdir())
        assert len(nodes) == 5

        # A typo in a manifest: the field path and the reason, nothing written.
        bad = tmp_path / "typo.yaml"
        bad.write_text((REPO / "examples" / "02-cluster.yaml").read_text()
                       .split("---")[0].replace("name: demo", "name: typo")
                       .replace("release: mke-3-7-0", "relase: mke-3-7-0"))
        res = ctl(up, "apply", "-f", str(bad), check=False)
        assert res.returncode != 0
        assert "spec: Object contains unknown field `relase`" in res.stderr
        assert ctl(up, "get", "cluster", "typo", check=False).returncode != 0

        # More machines than free hosts: the one left over says so and waits.
        extra = tmp_path / "extra.yaml"
        extra.write_text("".join(
            "---\napiVersion: kaas.containercloud.dev/v1alpha1\nkind: Machine\n"
            f"metadata: {{name: demo-extra-{i}, namespace: default,"
            " labels: {kaas.containercloud.dev/cluster: demo}}\n"
            "spec: {cluster: demo, region: local, role: worker, baremetal: {image: ubuntu-22.04}}\n"
            for i in range(2)))
        ctl(up, "apply", "-f", str(extra))

        def shortfall():
            for m in get_json(up, "machines")["items"]:
                for c in (m.get("status") or {}).get("conditions") or []:
                    if c["type"] == "ProviderReady" and c["reason"] == "NoCapacity":
                        return m["metadata"]["name"], c["message"]
            return None

        name, message = wait_for(shortfall, timeout=120, what="a NoCapacity condition")
        assert name.startswith("demo-extra-") and message

        # The cluster says so too: Pending, with a Capacity condition naming the machine.
        def cluster_pending():
            st = get_json(up, "cluster", "demo").get("status") or {}
            for c in st.get("conditions") or []:
                if c["type"] == "Capacity" and c["reason"] == "NoCapacity":
                    # One extra machine gets the one free host; the other one waits.
                    one = c["message"].startswith("1 of 7 machines waits for capacity; ")
                    return (st["phase"], c["message"]) if one else None
            return None

        phase, capacity = wait_for(cluster_pending, timeout=60, what="cluster Pending on capacity")
        assert phase == "Pending" and "; demo-extra-" in capacity, capacity
        row = ctl(up, "get", "cluster", "demo").stdout.splitlines()[-1].split()
        assert row[0] == "demo" and "Pending" in row, row
        ctl(up, "delete", "-f", str(extra))
        wait_for(lambda: len(get_json(up, "machines")["items"]) == 5, timeout=180,
                 what="extra machines gone")

        # Upgrade: every node moves to the new release, the cluster ends Ready on it.
        ctl(up, "apply", "-f", str(REPO / "examples" / "upgrade"))
        wait_for(lambda: all(m["status"].get("release") == "mke-3-7-1"
                             for m in get_json(up, "lcmmachines")["items"]),
                 timeout=300, what="all nodes upgraded")
        ctl(up, "wait", "cluster/demo", "--for=condition=Ready", "--timeout=120s", timeout=140)

        # A simulated cluster: its nodes are records that keep their cloud-init user data,
        # and the launcher runs the agents that data names - Ready here like bare metal.
        ctl(up, "apply", "-f", str(REPO / "examples" / "simulated"))
        ctl(up, "wait", "cluster/sim", "--for=condition=Ready", "--timeout=120s", timeout=140)
        assert len([p for p in (up.data / "nodes").iterdir() if p.name.startswith("sim-")]) == 2
        ctl(up, "delete", "cluster", "sim")
        wait_for(lambda: len(get_json(up, "machines")["items"]) == 5, timeout=120,
                 what="the simulated cluster's machines gone")

        # Delete: machines go, hosts are powered off and free again, agents stop.
        ctl(up, "delete", "cluster", "demo")
        wait_for(lambda: not get_json(up, "machines")["items"], timeout=300,
                 what="machines deleted")
        def busy_hosts() -> list[str]:
            return [f'{h["metadata"]["name"]} consumer={h["spec"].get("consumer")!r} '
                    f'power={(h.get("status") or {}).get("powerState")!r}'
                    for h in get_json(up, "baremetalhosts")["items"]
                    if h["spec"].get("consumer")
                    or (h.get("status") or {}).get("powerState") not in ("off", "Off")]

        try:
            wait_for(lambda: not busy_hosts(), timeout=300, what="hosts released and powered off")
        except AssertionError as e:
            raise AssertionError(f"{e}; hosts still busy: {busy_hosts()}") from None
        def our_agents() -> list[str]:  # this up's only: other tests run agents too
            ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            return [ln for ln in ps.splitlines()
                    if "services.lcm.agent" in ln and str(up.data) in ln]

        wait_for(lambda: not our_agents(), timeout=60, what="agents stopped")
    finally:
        if up.proc and up.proc.poll() is None:
            assert up.stop() == 0


def test_port_in_use_is_a_clear_message(tmp_path: Path) -> None:
    up = Up(tmp_path / "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", up.ports["port"]))
        s.listen()
        res = subprocess.run(up.argv(), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert f"port {up.ports['port']} is already in use" in res.stderr
    assert "Traceback" not in res.stderr


def test_unusable_data_folder_is_a_clear_message(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    up = Up(blocker / "data")
    res = subprocess.run(up.argv(), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "cannot use the data folder" in res.stderr and "Traceback" not in res.stderr


def test_data_folder_without_permission(tmp_path: Path, monkeypatch) -> None:
    from services.local import cli

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", denied)
    with pytest.raises(cli.UpError, match="permission denied. Fix its permissions"):
        cli.check_data_dir(tmp_path / "x")
    assert sys.platform
