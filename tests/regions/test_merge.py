"""Field ownership across the region link for the annotations regional controllers write
on management-homed objects: a health check's reboot request and the provider's answers
are the region's, whichever side changed the object last."""

from __future__ import annotations

from services.regional import merge
from shared.models import (
    REBOOT_DONE_ANNOTATION,
    REBOOT_REQUEST_ANNOTATION,
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
