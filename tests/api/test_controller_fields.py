"""What controllers write into users' objects stays theirs through the gateway: an update
that leaves a controller field out keeps it (re-applying a host's manifest does not free
the host), and one that changes it is refused (a user cannot clear a host's consumer)."""

from __future__ import annotations

from typing import Any

from shared.models import (
    CLUSTER_LABEL,
    MACHINE_LABEL,
    TARGET_ANNOTATION,
    BareMetalHost,
    Machine,
    convert,
    to_dict,
)
from tests.api.conftest import Gateway, ns_path

PATCH = "application/merge-patch+json"


def manifest() -> dict[str, Any]:
    """The host as the user wrote it (and may apply again)."""
    return {"apiVersion": "kaas.containercloud.dev/v1alpha1", "kind": "BareMetalHost",
            "metadata": {"name": "bm-0", "namespace": "team-a", "labels": {"rack": "a"}},
            "spec": {"region": "local", "bootMacAddress": "52:54:00:00:00:01",
                     "bmc": {"address": "redfish://10.0.0.1/1"}}}


async def claimed_host(gateway: Gateway) -> BareMetalHost:
    """The host once the bare-metal provider claimed it (a store write, as the provider's)."""
    host = await gateway.store.create(convert(BareMetalHost, manifest()))
    host.spec.consumer, host.spec.online = "uid-of-w-0", True
    host.metadata.labels[MACHINE_LABEL] = "w-0"
    return await gateway.store.update(host)


async def test_an_update_leaving_the_claim_out_keeps_it(gateway: Gateway) -> None:
    host = await claimed_host(gateway)
    body = manifest()
    body["metadata"]["labels"] = {"rack": "b"}
    body["metadata"]["resourceVersion"] = host.metadata.resource_version
    code, out = await gateway.call("PUT", ns_path("baremetalhosts", name="bm-0"), json=body)
    assert code == 200, out
    got = await gateway.store.get(BareMetalHost, "bm-0", "team-a")
    assert (got.spec.consumer, got.spec.online) == ("uid-of-w-0", True)
    assert got.metadata.labels == {"rack": "b", MACHINE_LABEL: "w-0"}
    # A patch of another field, and one repeating the claim's own values, pass too.
    code, out = await gateway.call(
        "PATCH", ns_path("baremetalhosts", name="bm-0"), content_type=PATCH,
        json={"spec": {"image": "ubuntu-24.04", "online": True},
              "metadata": {"labels": {MACHINE_LABEL: "w-0", "team": "x"}}})
    assert code == 200, out
    got = await gateway.store.get(BareMetalHost, "bm-0", "team-a")
    assert (got.spec.image, got.spec.consumer) == ("ubuntu-24.04", "uid-of-w-0")


async def test_a_user_cannot_clear_or_move_a_claim(gateway: Gateway) -> None:
    host = await claimed_host(gateway)
    for patch, field in (
        ({"spec": {"consumer": None}}, "spec.consumer"),
        ({"spec": {"consumer": "uid-of-someone-else"}}, "spec.consumer"),
        ({"spec": {"online": False}}, "spec.online"),
        ({"metadata": {"labels": {MACHINE_LABEL: None}}}, f"metadata.labels[{MACHINE_LABEL}]"),
    ):
        code, out = await gateway.call("PATCH", ns_path("baremetalhosts", name="bm-0"),
                                       content_type=PATCH, json=patch)
        assert code == 422, (patch, out)
        assert out["details"]["causes"][0]["field"] == field, out
        assert "written by the BareMetalHost controllers" in out["message"]
    body = to_dict(host)
    body["spec"]["consumer"] = ""
    code, out = await gateway.call("PUT", ns_path("baremetalhosts", name="bm-0"), json=body)
    assert code == 422, out
    got = await gateway.store.get(BareMetalHost, "bm-0", "team-a")
    assert got.metadata.resource_version == host.metadata.resource_version, "nothing written"


async def test_a_machines_cluster_label_and_credential_record_stay(gateway: Gateway) -> None:
    await gateway.store.create(convert(Machine, {
        "metadata": {"name": "w-0", "namespace": "team-a", "labels": {CLUSTER_LABEL: "c1"},
                     "annotations": {TARGET_ANNOTATION: "os1"}},
        "spec": {"cluster": "c1", "region": "local", "simulated": {}}}))
    code, out = await gateway.call(
        "PATCH", ns_path("machines", name="w-0"), content_type=PATCH,
        json={"metadata": {"annotations": {TARGET_ANNOTATION: "os2"}}})
    assert code == 422, out
    code, out = await gateway.call(
        "PATCH", ns_path("machines", name="w-0"), content_type=PATCH,
        json={"metadata": {"labels": None, "annotations": {"note": "hi"}}})
    assert code == 200, out
    got = await gateway.store.get(Machine, "w-0", "team-a")
    assert got.metadata.labels == {CLUSTER_LABEL: "c1"}
    assert got.metadata.annotations == {TARGET_ANNOTATION: "os1", "note": "hi"}
