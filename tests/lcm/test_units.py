"""Pure parts of LCM: rollout policy, item derivation and hashes, tokens, phases, commands."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import msgspec
import pytest

from services.lcm.agent.executor import HostExecutor, ItemFailed, NodeRootExecutor, commands_for
from services.lcm.agent.journal import Journal
from services.lcm.config import LCMSettings
from services.lcm.items import item_hash, release_items
from services.lcm.phases import items_view, machine_phase
from services.lcm.rollout import Group, MachineView, plan, state_of
from services.lcm.tokens import machine_token, verify
from services.release.defaults import cluster_release
from shared.models import LCMMachine, LCMMachineSpec, ObjectMeta, StateItem, StateItemStatus


def mv(
    name: str, state: str, role: str = "worker", group: str = "", failure: str = ""
) -> MachineView:
    return MachineView(name=name, role=role, state=state, group=group, failure=failure)  # type: ignore[arg-type]


def test_control_plane_one_at_a_time_before_workers() -> None:
    ms = [mv("cp-b", "waiting", "control-plane"), mv("cp-a", "waiting", "control-plane"),
          mv("w1", "waiting")]
    assert plan(ms, {}).start == ["cp-a"]
    ms[1] = mv("cp-a", "upgrading", "control-plane")
    assert plan(ms, {}).start == []
    ms[1] = mv("cp-a", "current", "control-plane")
    assert plan(ms, {}).start == ["cp-b"]


def test_update_groups_by_index_with_concurrency_caps() -> None:
    groups = {"g1": Group("g1", 1, 2), "g1b": Group("g1b", 1, 1), "g2": Group("g2", 2, 5)}
    ms = [mv("cp", "current", "control-plane"),
          mv("a1", "waiting", group="g1"), mv("a2", "waiting", group="g1"),
          mv("a3", "waiting", group="g1"), mv("b1", "waiting", group="g1b"),
          mv("b2", "waiting", group="g1b"), mv("c1", "waiting", group="g2")]
    assert plan(ms, groups).start == ["a1", "a2", "b1"]
    ms[1], ms[4] = mv("a1", "draining", group="g1"), mv("b1", "current", group="g1b")
    assert plan(ms, groups).start == ["a2", "b2"]
    done = [mv(m.name, "current", m.role, m.group) if m.group != "g2" else m for m in ms]
    assert plan(done, groups).start == ["c1"]


def test_default_group_runs_first_and_alone() -> None:
    groups = {"g1": Group("g1", 1, 3)}
    ms = [mv("w1", "waiting"), mv("w2", "waiting"), mv("x", "waiting", group="g1")]
    assert plan(ms, groups).start == ["w1"]


def test_failure_in_flight_stops_everything() -> None:
    ms = [mv("cp", "current", "control-plane"), mv("w1", "upgrading", failure="boom"),
          mv("w2", "waiting")]
    p = plan(ms, {Group("", 0, 5).name: Group("", 0, 5)})
    assert p.start == [] and p.failed == [("w1", "boom")] and not p.done


def test_states() -> None:
    kw = dict(target="new", spec_cordoned=False, status_cordoned=False)
    assert state_of(spec_release="new", status_release="", **kw) == "deploying"
    assert state_of(spec_release="old", status_release="old", **kw) == "waiting"
    assert state_of(spec_release="new", status_release="old", **kw) == "upgrading"
    assert state_of(spec_release="new", status_release="new", **kw) == "current"
    assert state_of(spec_release="new", status_release="new", target="new",
                    spec_cordoned=False, status_cordoned=True) == "uncordoning"
    assert state_of(spec_release="old", status_release="old", target="new",
                    spec_cordoned=True, status_cordoned=False) == "draining"


def test_items_follow_the_release_and_role() -> None:
    old, new = cluster_release("mke-3-7-0"), cluster_release("mke-3-7-1")
    cp = release_items(new, "control-plane", mirror_url="http://m")
    w = release_items(new, "worker", mirror_url="http://m")
    assert [i.name for i in cp] == ["host-prepare", "container-runtime", "mke-images",
                                     "mke-join", "addons"]
    assert [i.name for i in w] == ["host-prepare", "container-runtime", "mke-images", "mke-join"]
    assert cp[3].params["role"] == "manager" and w[3].params["role"] == "worker"
    changed = {a.name for a, b in zip(release_items(old, "worker", mirror_url="http://m"), w,
                                      strict=True) if item_hash(a) != item_hash(b)}
    assert "mke-join" in changed and "host-prepare" in changed


def test_tokens_open_one_machine_only() -> None:
    t = machine_token(b"s", "uid-1")
    assert verify(b"s", "uid-1", t)
    assert not verify(b"s", "uid-2", t) and not verify(b"other", "uid-1", t)
    assert not verify(b"s", "", t) and not verify(b"s", "uid-1", "")
    assert "s" not in t and len(t) == 64


def test_phases() -> None:
    item = StateItem(name="a", phase="prepare", version="1")
    dep = StateItem(name="b", phase="deploy", version="1")
    lm = LCMMachine(metadata=ObjectMeta(name="m", namespace="d"), spec=LCMMachineSpec(
        cluster="c", machine="m", region="r", release="r1", state_items=[item, dep]))
    assert machine_phase(lm) == "Uninitialized"
    lm.status.hostname = "h"
    assert machine_phase(lm) == "Pending"
    lm.status.state_items["a"] = StateItemStatus(hash=item_hash(item), state="Running")
    assert machine_phase(lm) == "Prepare"
    lm.status.state_items["a"] = StateItemStatus(hash=item_hash(item), state="Done")
    assert machine_phase(lm) == "Deploy"
    lm.status.state_items["b"] = StateItemStatus(hash=item_hash(dep), state="Failed", message="x")
    assert items_view(lm).failed == ("b", "x")
    lm.status.state_items["b"] = StateItemStatus(hash=item_hash(dep), state="Done")
    assert machine_phase(lm) == "Ready"
    lm.status.release = "r1"
    lm.spec.state_items = [item, StateItem(name="b", phase="deploy", version="2")]
    assert machine_phase(lm) == "Reconfigure"
    lm.spec.release = "r2"
    assert machine_phase(lm) == "Upgrade"


async def test_host_executor_smoke_runs_shell() -> None:
    ex = HostExecutor(hostname="n1", ip="10.0.0.1")
    await ex.apply(StateItem(name="ok", phase="deploy", version="1", runner="shell",
                             params={"command": "true"}), "h")
    with pytest.raises(ItemFailed, match="exited with 3"):
        await ex.apply(StateItem(name="no", phase="deploy", version="1", runner="shell",
                                 params={"command": "echo bad >&2; exit 3"}), "h")
    assert ex.facts() == ("n1", "10.0.0.1")


def test_host_commands_are_built_from_params() -> None:
    pkgs = StateItem(name="rt", phase="prepare", version="1", runner="packages",
                     params={"packages": "containerd.io=1.6.31-1,docker-ee"})
    assert commands_for(pkgs) == [["apt-get", "install", "-y", "--allow-downgrades",
                                   "containerd.io=1.6.31-1", "docker-ee"]]
    with pytest.raises(ItemFailed, match="unknown runner"):
        commands_for(StateItem(name="x", phase="deploy", version="1", runner="nope"))


async def test_root_executor_stays_inside_the_root(tmp_path: Path) -> None:
    ex = NodeRootExecutor(tmp_path)
    with pytest.raises(ItemFailed, match="leaves the node root"):
        await ex.apply(StateItem(name="f", phase="deploy", version="1", runner="file",
                                 params={"path": "../../etc/passwd", "content": "x"}), "h")
    await ex.apply(StateItem(name="f", phase="deploy", version="1", runner="file",
                             params={"path": "/etc/motd", "content": "hi"}), "h")
    assert (tmp_path / "etc/motd").read_text() == "hi"


async def test_root_executor_refuses_symlinks_out_of_the_root(tmp_path: Path) -> None:
    """A link inside the root that points out of it - to a sibling whose name starts with
    the root's, too - is refused like a ``..``."""
    root, sibling = tmp_path / "node", tmp_path / "node2"
    (root / "etc").mkdir(parents=True)
    sibling.mkdir()
    (root / "etc/out").symlink_to(sibling)
    (root / "etc/up").symlink_to(tmp_path)
    ex = NodeRootExecutor(root)
    for path in ("/etc/out/motd", "/etc/up/node2/motd", "/etc/up"):
        with pytest.raises(ItemFailed, match="leaves the node root"):
            await ex.apply(StateItem(name="f", phase="deploy", version="1", runner="file",
                                     params={"path": path, "content": "x"}), "h")
    assert list(sibling.iterdir()) == []
    (root / "etc/in").symlink_to(root / "etc")
    await ex.apply(StateItem(name="f", phase="deploy", version="1", runner="file",
                             params={"path": "/etc/in/motd", "content": "hi"}), "h")
    assert (root / "etc/motd").read_text() == "hi"


async def test_root_executor_writes_after_its_directories_were_removed(tmp_path: Path) -> None:
    """It remembers the directories it made; one removed since is made again, not an
    item failure."""
    ex = NodeRootExecutor(tmp_path)
    item = StateItem(name="f", phase="deploy", version="1", runner="file",
                     params={"path": "/etc/app/conf", "content": "one"})
    await ex.apply(item, "h1")
    shutil.rmtree(tmp_path / "etc")
    shutil.rmtree(tmp_path / "var/log")
    await ex.apply(msgspec.structs.replace(item, params={"path": "/etc/app/conf",
                                                          "content": "two"}), "h2")
    assert (tmp_path / "etc/app/conf").read_text() == "two"
    assert (tmp_path / "etc/ccloud/items/f").read_text() == "1 h2\n"
    log = (tmp_path / "var/log/ccloud/applied.log").read_text().splitlines()
    assert [line.split()[1:3] for line in log] == [["start", "f"], ["done", "f"]]


@pytest.mark.parametrize("sync", [True, False])
def test_journal_is_synced_unless_told_not_to(tmp_path: Path, sync: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A node's journal is fsynced per mark; a simulated node's (bench.fleet) need not be,
    and still reads back the same."""
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    j = Journal(tmp_path, sync=sync)
    j.mark("a", "h1")
    j.mark("b", "h2")
    assert len(synced) == (2 if sync else 0)
    again = Journal(tmp_path)
    assert again.finished("a", "h1") and again.finished("b", "h2")
    assert not again.finished("a", "h2")
    shutil.rmtree(j.path.parent)  # the node's state wiped under a running agent
    j.mark("c", "h3")
    assert Journal(tmp_path).done == {"a": "h1", "b": "h2", "c": "h3"}


def test_lcm_settings_refuse_timings_that_would_call_live_nodes_missing() -> None:
    ok = LCMSettings.from_env({"CCLOUD_LCM_HEARTBEAT_INTERVAL": "20",
                               "CCLOUD_LCM_HEARTBEAT_TIMEOUT": "40"})
    assert (ok.heartbeat_interval, ok.heartbeat_timeout, ok.lease_ttl) == (20.0, 40.0, 160.0)
    for env, why in (
        ({"CCLOUD_LCM_HEARTBEAT_INTERVAL": "0"}, r"> 0.0 - at `\$.heartbeat_interval`"),
        ({"CCLOUD_LCM_HEARTBEAT_STATUS_INTERVAL": "-5"}, "heartbeat_status_interval"),
        ({"CCLOUD_LCM_POLL_INTERVAL": "soon"}, "poll_interval"),
        ({"CCLOUD_LCM_HEARTBEAT_INTERVAL": "30"},
         r"heartbeat_interval \(30s\) must be at most half of heartbeat_timeout \(45s\)"),
    ):
        with pytest.raises(SystemExit, match=r"invalid settings \(CCLOUD_LCM_\*\): .*" + why):
            LCMSettings.from_env(env)
