"""Field ownership across the region link for what regional controllers write into
management-homed objects: a health check's reboot request and the provider's answers, a
Machine's cluster label and credential record, a bare-metal host's claim (consumer, online,
machine label) are the region's, whichever side changed the object last; the rest of spec
and metadata stays management's."""

from __future__ import annotations

from services.regional import merge
from shared.models import (
    CLUSTER_LABEL,
    MACHINE_LABEL,
    POOL_LABEL,
    REBOOT_DONE_ANNOTATION,
    REBOOT_REQUEST_ANNOTATION,
    TARGET_ANNOTATION,
    BareMetalHost,
    Machine,
    convert,
    copy,
)


def machine(rv: str, **annotations: str) -> Machine:
    return convert(Machine, {
        "metadata": {"name": "m", "namespace": "default", "uid": "u1", "resourceVersion": rv,
                     "annotations": annotations},
        "spec": {"cluster": "c", "region": "dc1"}})


def test_management_edits_keep_the_regions_reboot_annotations() -> None:
    local = machine("7", **{REBOOT_REQUEST_ANNOTATION: "r1", REBOOT_DONE_ANNOTATION: "r1"})
    mgmt = machine("3", team="a")  # a user's edit at management, which never saw the reboot
    action = merge.down(mgmt, local, uid="u1")
    assert isinstance(action, merge.Restore)
    assert action.obj.metadata.annotations == {
        "team": "a", REBOOT_REQUEST_ANNOTATION: "r1", REBOOT_DONE_ANNOTATION: "r1"}


def test_the_regions_reboot_annotations_go_up_and_management_cannot_forge_them() -> None:
    local = machine("7", **{REBOOT_REQUEST_ANNOTATION: "r2"})
    mgmt = machine("3", team="a", **{REBOOT_REQUEST_ANNOTATION: "r1",
                                     REBOOT_DONE_ANNOTATION: "r1"})
    up = merge.up(local, mgmt, uid="u1")
    assert isinstance(up, merge.Restore)
    assert up.obj.metadata.annotations == {"team": "a", REBOOT_REQUEST_ANNOTATION: "r2"}
    # Once both sides agree nothing moves (no echo).
    agreed = copy(mgmt)
    agreed.metadata.annotations = {"team": "a", REBOOT_REQUEST_ANNOTATION: "r2"}
    local.metadata.annotations = dict(agreed.metadata.annotations)
    assert merge.up(local, agreed, uid="u1") is None
    assert merge.down(agreed, local, uid="u1") is None


# --- what regional controllers write into spec and metadata ------------------------------


def host(rv: str, *, generation: int = 1, consumer: str = "", online: bool = False,
         image: str = "", **labels: str) -> BareMetalHost:
    return convert(BareMetalHost, {
        "metadata": {"name": "bm-0", "namespace": "default", "uid": "h1", "resourceVersion": rv,
                     "generation": generation, "labels": labels},
        "spec": {"region": "dc1", "bootMacAddress": "52:54:00:00:00:01",
                 "bmc": {"address": "redfish://10.0.0.1/1"}, "online": online,
                 "consumer": consumer, "image": image}})


def claimed(rv: str, *, generation: int = 2, **labels: str) -> BareMetalHost:
    """The host as the bare-metal provider claims it in the region (its store bumps the
    generation: the spec changed)."""
    return host(rv, generation=generation, consumer="m-uid", online=True,
                **{MACHINE_LABEL: "w-0"}, **labels)


def test_a_claim_made_in_the_region_survives_a_label_edit_at_management() -> None:
    local = claimed("9")
    mgmt = host("4", team="a")  # a user labels the host; management never saw the claim
    action = merge.down(mgmt, local, uid="h1")
    assert isinstance(action, merge.Restore)
    got = action.obj
    assert isinstance(got, BareMetalHost)
    assert (got.spec.consumer, got.spec.online) == ("m-uid", True)
    assert got.metadata.labels == {"team": "a", MACHINE_LABEL: "w-0"}
    assert got.metadata.generation == 2, "generation never goes back in the region"


def test_a_claim_goes_up_and_then_nothing_echoes() -> None:
    local = claimed("9")
    mgmt = host("4", team="a")
    up = merge.up(local, mgmt, uid="h1")
    assert isinstance(up, merge.Restore)
    got = up.obj
    assert isinstance(got, BareMetalHost)
    assert (got.spec.consumer, got.spec.online) == ("m-uid", True)
    assert got.metadata.labels == {"team": "a", MACHINE_LABEL: "w-0"}
    assert got.metadata.generation == 2
    # The region takes the user's label; then both sides agree, in either key order.
    down = merge.down(got, local, uid="h1")
    assert isinstance(down, merge.Restore)
    settled = copy(down.obj)
    settled.metadata.labels = {MACHINE_LABEL: "w-0", "team": "a"}
    assert merge.up(settled, got, uid="h1") is None
    assert merge.down(got, settled, uid="h1") is None


def test_a_release_in_the_region_goes_up() -> None:
    mgmt = claimed("5", team="a")
    local = host("10", generation=3, team="a")  # the provider freed it: no consumer, no label
    up = merge.up(local, mgmt, uid="h1")
    assert isinstance(up, merge.Restore)
    got = up.obj
    assert isinstance(got, BareMetalHost)
    assert (got.spec.consumer, got.spec.online) == ("", False)
    assert got.metadata.labels == {"team": "a"}
    assert got.metadata.generation == 3


def test_management_still_owns_what_users_write() -> None:
    """The user's spec and labels win both ways; only the controller fields are the
    region's, even a controller key management holds another value of."""
    mgmt = host("6", generation=2, image="ubuntu-24.04", team="b",
                **{MACHINE_LABEL: "forged"})
    local = claimed("9", team="a")  # both sides changed the spec (generation 2 each)
    down = merge.down(mgmt, local, uid="h1")
    assert isinstance(down, merge.Restore)
    got = down.obj
    assert isinstance(got, BareMetalHost)
    assert (got.spec.image, got.spec.consumer, got.spec.online) == ("ubuntu-24.04", "m-uid",
                                                                    True)
    assert got.metadata.labels == {"team": "b", MACHINE_LABEL: "w-0"}
    assert got.metadata.generation == 3, "a spec new to both sides is a new generation"
    up = merge.up(local, mgmt, uid="h1")
    assert isinstance(up, merge.Restore)
    assert up.obj.spec == got.spec and up.obj.metadata.labels == got.metadata.labels
    assert up.obj.metadata.generation == 3
    # Kinds whose spec no controller writes: management's spec whole, its generation.
    m_local = machine("7")
    m_local.spec.maintenance = True  # written in the region past ownership: not the region's
    m_mgmt = machine("3")
    m_mgmt.spec.update_group = "g1"
    m_mgmt.metadata.generation = 2
    m_down = merge.down(m_mgmt, m_local, uid="u1")
    assert isinstance(m_down, merge.Restore)
    assert m_down.obj.spec == m_mgmt.spec


def test_a_machines_cluster_label_and_credential_record_are_the_regions() -> None:
    local = machine("7", **{TARGET_ANNOTATION: "os-cred"})
    local.metadata.labels = {CLUSTER_LABEL: "c"}
    mgmt = machine("3", team="a")
    mgmt.metadata.labels = {"owner": "ops"}
    down = merge.down(mgmt, local, uid="u1")
    assert isinstance(down, merge.Restore)
    assert down.obj.metadata.labels == {"owner": "ops", CLUSTER_LABEL: "c"}
    assert down.obj.metadata.annotations == {"team": "a", TARGET_ANNOTATION: "os-cred"}
    up = merge.up(local, mgmt, uid="u1")
    assert isinstance(up, merge.Restore)
    assert up.obj.metadata.labels == {"owner": "ops", CLUSTER_LABEL: "c"}
    assert up.obj.metadata.annotations == {"team": "a", TARGET_ANNOTATION: "os-cred"}


def test_a_pools_machine_made_in_the_region_goes_up_and_is_then_shared() -> None:
    """LCM's pool controller runs in the region: the Machines it makes must appear at
    management (a hand-made Machine never starts in the region, so nothing else goes up
    uninvited); once there, management's edits go down as for any Machine."""
    made = machine("4")
    made.metadata.labels = {POOL_LABEL: "workers", CLUSTER_LABEL: "c"}
    made.metadata.finalizers = ["lcm/x"]
    up = merge.up(made, None, uid="u1")
    assert isinstance(up, merge.Restore) and up.obj is made
    assert merge.up(machine("4"), None, uid="u1") is None, "no label: management's to make"
    gone = copy(made)
    gone.metadata.deletion_timestamp = "2026-12-02T00:00:00Z"
    assert merge.up(gone, None, uid="u1") is None, "never resurrected on its way out"

    at_mgmt = copy(made)
    at_mgmt.metadata.labels["team"] = "a"  # a user's edit at management
    at_mgmt.metadata.resource_version = "9"
    down = merge.down(at_mgmt, made, uid="u1")
    assert isinstance(down, merge.Restore)
    assert down.obj.metadata.labels == {POOL_LABEL: "workers", CLUSTER_LABEL: "c", "team": "a"}
    assert down.obj.metadata.finalizers == ["lcm/x"]
