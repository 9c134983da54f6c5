"""The MKE join: manager address and join-token reference in the item, the token itself
only in the details a cluster's own agents fetch, and the command built from both."""

from __future__ import annotations

import msgspec
import pytest

from services.lcm.agent.executor import (
    HostExecutor,
    ItemFailed,
    commands_for,
    mke_join_command,
)
from services.lcm.config import LCMSettings
from services.lcm.endpoint import details_of
from services.lcm.items import item_hash, keep_joined, release_items
from services.lcm.tokens import JOIN_TOKEN_REF, join_token, machine_token
from services.release.defaults import cluster_release
from shared.models import (
    LCMMachine,
    LCMMachineSpec,
    ObjectMeta,
    OwnerReference,
    StateItem,
    StateItemStatus,
)

UCP = ["docker", "run", "--rm", "-v", "/var/run/docker.sock:/var/run/docker.sock"]


def join_item(manager: str, role: str = "worker") -> StateItem:
    items = release_items(cluster_release("mke-3-7-1"), role,  # type: ignore[arg-type]
                          mirror_url="http://m", manager=manager)
    return next(i for i in items if i.name == "mke-join")


def test_join_item_names_the_manager_and_only_references_the_token() -> None:
    item = join_item("10.0.0.5", "control-plane")
    assert item.params == {"role": "manager", "manager": "10.0.0.5",
                           "tokenRef": JOIN_TOKEN_REF}
    assert join_item("10.0.0.6").params["manager"] == "10.0.0.6"


def test_join_command_is_built_from_manager_and_token() -> None:
    item = join_item("10.0.0.5")
    assert commands_for(item, secrets={JOIN_TOKEN_REF: "tok-1"}) == [[
        *UCP, "mirantis/ucp:3.7.1", "join", "--role", "worker",
        "--manager", "10.0.0.5:443", "--token", "tok-1"]]
    kw = dict(version="3.8.0", role="manager", token="t")
    assert mke_join_command(manager="mgr.example:8443", **kw)[-3] == "mgr.example:8443"
    assert mke_join_command(manager="fd00::5", **kw)[-3] == "[fd00::5]:443"
    assert mke_join_command(manager="[fd00::5]:9443", **kw)[-3] == "[fd00::5]:9443"
    with pytest.raises(ItemFailed, match="a worker needs a manager address"):
        commands_for(join_item(""), secrets={JOIN_TOKEN_REF: "tok-1"})
    with pytest.raises(ItemFailed, match=f"secret '{JOIN_TOKEN_REF}' was not provided"):
        commands_for(item, secrets={})
    with pytest.raises(ItemFailed, match="unknown role 'boss'"):
        mke_join_command(version="1", role="boss", manager="m", token="t")


def test_the_manager_node_installs_mke_advertising_its_own_address() -> None:
    item = join_item("", "control-plane")
    assert item.params["role"] == "manager" and item.params["manager"] == ""
    assert commands_for(item, address="10.0.0.5", secrets={JOIN_TOKEN_REF: "tok-1"}) == [[
        *UCP, "mirantis/ucp:3.7.1", "install", "--host-address", "10.0.0.5"]]


def test_details_carry_the_token_of_the_machines_own_cluster_only() -> None:
    def lm(cluster_uid: str | None) -> LCMMachine:
        owners = [] if cluster_uid is None else [OwnerReference(
            api_version="v1", kind="LCMCluster", name="c", uid=cluster_uid)]
        return LCMMachine(
            metadata=ObjectMeta(name="m", namespace="d", owner_references=owners),
            spec=LCMMachineSpec(cluster="c", machine="m", region="r",
                                state_items=[join_item("10.0.0.5")]))

    settings = LCMSettings()
    a = details_of(lm("uid-a"), settings, b"secret")
    assert a.secrets == {JOIN_TOKEN_REF: join_token(b"secret", "uid-a")}
    assert a.secrets[JOIN_TOKEN_REF] != join_token(b"secret", "uid-b")
    assert join_token(b"secret", "uid-a") != machine_token(b"secret", "uid-a")
    assert details_of(lm(None), settings, b"secret").secrets == {}
    assert details_of(lm("uid-a"), settings).secrets == {}
    # The stored object (what events and the API carry) holds the reference, not the value.
    assert a.secrets[JOIN_TOKEN_REF].encode() not in msgspec.json.encode(lm("uid-a"))


async def test_host_executor_masks_secrets_in_failure_messages() -> None:
    ex = HostExecutor(hostname="n1", ip="10.0.0.1")
    item = StateItem(name="x", phase="deploy", version="1", runner="shell",
                     params={"command": "echo join with tok-SECRET-9 refused >&2; exit 4"})
    with pytest.raises(ItemFailed) as e:
        await ex.apply(item, "h", secrets={JOIN_TOKEN_REF: "tok-SECRET-9"})
    assert "tok-SECRET-9" not in str(e.value) and "join with ****** refused" in str(e.value)


def test_a_joined_node_keeps_its_join_unless_role_or_version_changes() -> None:
    release = cluster_release("mke-3-7-1")

    def items(manager: str, role: str = "worker", name: str = "mke-3-7-1") -> list[StateItem]:
        return release_items(cluster_release(name), role,  # type: ignore[arg-type]
                             mirror_url="http://m", manager=manager)

    joined = items("10.0.0.5")
    join = next(i for i in joined if i.name == "mke-join")
    done = {"mke-join": StateItemStatus(state="Done", hash=item_hash(join))}
    # Only the manager moved: the join stays as it was applied.
    assert keep_joined(joined, done, items("10.0.0.6")) == joined
    # Not applied yet (or applied in another form): the new manager is named.
    for status in ({}, {"mke-join": StateItemStatus(state="Running", hash=item_hash(join))},
                   {"mke-join": StateItemStatus(state="Done", hash="other")}):
        assert keep_joined(joined, status, items("10.0.0.6")) == items("10.0.0.6")
    # A new role or a new MKE version re-runs it, through the current manager.
    assert keep_joined(joined, done, items("10.0.0.6", "control-plane")) == items(
        "10.0.0.6", "control-plane")
    assert release.spec.mke_version != cluster_release("mke-3-8-0").spec.mke_version
    assert keep_joined(joined, done, items("10.0.0.6", name="mke-3-8-0")) == items(
        "10.0.0.6", name="mke-3-8-0")
