"""A Machine's nodeLabels reach its node through a ``reconfigure`` item: set on deploy,
changed and removed later by re-running that item alone, with no drain."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.lcm.agent.executor import NodeRootExecutor, commands_for
from services.lcm.items import NODE_LABELS, item_hash, node_labels_item
from shared.models import LCMMachine, Machine, StateItemStatus, ValidationError, convert
from tests.lcm.conftest import Lcm
from tests.lcm.test_agent import starts
from tests.waiting import eventually


def test_the_item_carries_removals_until_an_item_with_them_is_done() -> None:
    first = node_labels_item({"tier": "db", "zone": "a"}, [], {})
    assert first is not None and first.phase == "reconfigure" and first.runner == "labels"
    assert first.params == {"labels": "tier=db,zone=a", "remove": ""}
    # zone dropped while the first item has not run: its labels are removed all the same.
    second = node_labels_item({"tier": "web"}, [first], {})
    assert second is not None and second.params == {"labels": "tier=web", "remove": "zone"}
    assert second.version != first.version
    # tier dropped too before anything ran: the pending removal is kept.
    third = node_labels_item({}, [second], {})
    assert third is not None and third.params == {"labels": "", "remove": "tier,zone"}
    # Once that is done it stays as it is (no re-run for an empty removal list).
    done = {NODE_LABELS: StateItemStatus(state="Done", hash=item_hash(third))}
    assert node_labels_item({}, [third], done) is third
    assert node_labels_item({}, [], {}) is None
    done = {NODE_LABELS: StateItemStatus(state="Done", hash=item_hash(second))}
    assert node_labels_item({"tier": "web"}, [second], done) is second
    # A removal that ran is not repeated; an empty value is a label too.
    done = {NODE_LABELS: StateItemStatus(state="Done", hash=item_hash(second))}
    fourth = node_labels_item({"node-role.kubernetes.io/db": ""}, [second], done)
    assert fourth is not None
    assert fourth.params == {"labels": "node-role.kubernetes.io/db", "remove": "tier"}


async def test_both_executors_set_and_remove_labels(tmp_path: Path) -> None:
    item = node_labels_item({"tier": "web", "node-role.kubernetes.io/db": ""}, [], {})
    assert item is not None
    root = NodeRootExecutor(tmp_path, hostname="n1", ip="10.0.0.1")
    await root.apply(item, item_hash(item))
    after = node_labels_item({"tier": "api"}, [item], {})
    assert after is not None
    assert commands_for(after, hostname="n1") == [
        ["kubectl", "label", "node", "n1", "--overwrite", "tier=api",
         "node-role.kubernetes.io/db-"]]
    await root.apply(after, item_hash(after))
    assert (tmp_path / "etc/ccloud/node-labels").read_text() == "tier=api\n"


@pytest.mark.parametrize(("labels", "words"), [
    ({"kubernetes.io/hostname": "x"}, "the prefix kubernetes.io is reserved"),
    ({"kaas.containercloud.dev/x": "y"}, "the prefix kaas.containercloud.dev is reserved"),
    ({"bad key": "x"}, "the name must be 1-63 characters"),
    ({"tier": "a" * 64}, "at most 63 characters"),
])
def test_labels_a_node_would_refuse_are_refused(labels: dict[str, str], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        convert(Machine, {"metadata": {"name": "m"},
                          "spec": {"cluster": "c", "region": "r", "nodeLabels": labels}})


async def test_labels_follow_the_machine_without_draining_the_node(lcm: Lcm) -> None:
    cp, w = await lcm.create_cluster("nl", release="mke-3-7-1", cps=1, workers=1)
    await lcm.set_spec(Machine, w, node_labels={"tier": "db", "zone": "a"})
    await eventually(lambda: lcm.find(LCMMachine, w), what="LCMMachines")
    await lcm.start_agent(cp)
    await lcm.start_agent(w)
    await eventually(lambda: lcm.ready("nl"), timeout=30, what="cluster Ready")
    labels = lcm.root(w) / "etc/ccloud/node-labels"
    await eventually(lambda: labels.exists() and labels.read_text() == "tier=db\nzone=a\n",
                     timeout=20, what="the labels on the node")

    await lcm.set_spec(Machine, w, node_labels={"tier": "web"})
    await eventually(lambda: labels.read_text() == "tier=web\n", timeout=20,
                     what="the changed labels on the node")
    await eventually(lambda: lcm.ready("nl"), timeout=30, what="Ready again")
    ran = starts(lcm.root(w))
    assert ran.count(NODE_LABELS) == 2 and ran.count("mke-join") == 1, "only the labels ran"
    log = (lcm.root(w) / "var/log/ccloud/applied.log").read_text()
    assert "cordon" not in log, "a label change drains nothing"
