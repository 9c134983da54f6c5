"""Cluster admission: a supported release, moved only along allowed paths, and a provider
the Cluster's Region offers; a Machine that fits its Cluster; and deletes that would strand
what depends on the object (the last control-plane Machine, a credential in use) refused."""

from __future__ import annotations

import pytest

from services.release.defaults import ensure_default_releases
from shared.models import (
    MACHINE_LABEL,
    TARGET_ANNOTATION,
    BareMetalHost,
    BareMetalHostCredential,
    Cluster,
    Machine,
    ObjectMeta,
    OpenStackCredential,
    Region,
    RegionSpec,
    convert,
)
from shared.store import NotFound
from tests.api.conftest import Gateway, cluster, ns_path, os_credential
from tests.waiting import eventually


async def test_release_must_be_supported_and_upgrades_follow_the_matrix(gateway: Gateway):
    await ensure_default_releases(gateway.store)

    code, body = await gateway.call("POST", ns_path("clusters"),
                                    json=cluster("c1", release="mke-9-9-9"))
    assert code == 422, body
    assert body["details"]["causes"][0]["field"] == "spec.release"
    assert "mke-3-7-0" in body["message"], "the message lists what is supported"
    assert (await gateway.store.list_all(Cluster, "team-a")) == []

    code, body = await gateway.call("POST", ns_path("clusters"),
                                    json=cluster("c1", release="mke-3-7-0"))
    assert code == 201, body
    # Play the LCM controller: the cluster runs 3.7.0.
    c1 = await gateway.store.get(Cluster, "c1", "team-a")
    c1.status.release = "mke-3-7-0"
    await gateway.store.update_status(c1)

    # 3.7.0 -> 3.8.0 skips a step: refused by PATCH and by PUT, nothing written.
    patch = {"spec": {"release": "mke-3-8-0"}}
    code, body = await gateway.call("PATCH", ns_path("clusters", name="c1"), json=patch,
                                    content_type="application/merge-patch+json")
    assert code == 422 and "mke-3-7-0 -> mke-3-8-0 is not allowed" in body["message"], body
    stored = await gateway.store.get(Cluster, "c1", "team-a")
    assert stored.spec.release == "mke-3-7-0"
    code, current = await gateway.call("GET", ns_path("clusters", name="c1"))
    current["spec"]["release"] = "mke-3-6-0"
    code, body = await gateway.call("PUT", ns_path("clusters", name="c1"), json=current)
    assert code == 422 and "does not exist" in body["message"], body

    # The allowed next step is accepted; unrelated spec edits are not judged.
    code, body = await gateway.call("PATCH", ns_path("clusters", name="c1"),
                                    json={"spec": {"release": "mke-3-7-1"}},
                                    content_type="application/merge-patch+json")
    assert code == 200, body
    code, body = await gateway.call("PATCH", ns_path("clusters", name="c1"),
                                    json={"spec": {"description": "edited"}},
                                    content_type="application/merge-patch+json")
    assert code == 200, body
    # Taking back an upgrade that has not started (status still on 3.7.0) is allowed too.
    code, body = await gateway.call("PATCH", ns_path("clusters", name="c1"),
                                    json={"spec": {"release": "mke-3-7-0"}},
                                    content_type="application/merge-patch+json")
    assert code == 200, body


async def test_provider_must_be_one_the_region_offers(gateway: Gateway):
    # No Region "dc1" yet: nothing to judge against (it may be written after its clusters).
    code, body = await gateway.call("POST", ns_path("clusters"),
                                    json=cluster("early", region="dc1", provider="vsphere"))
    assert code == 201, body

    dc1 = await gateway.store.create(Region(metadata=ObjectMeta(name="dc1"),
                                            spec=RegionSpec(providers=["baremetal"])))
    # The gateway judges by the Regions its cache has applied (no read per write).
    await eventually(lambda: gateway.store.cached(Region, "dc1", None, at_least=0),
                     what="the gateway's cache has dc1")
    code, body = await gateway.call("POST", ns_path("clusters"),
                                    json=cluster("os", region="dc1", provider="openstack"))
    assert code == 422, body
    assert body["details"]["causes"][0]["field"] == "spec.provider"
    assert "region 'dc1' offers baremetal, not openstack" in body["message"]
    with pytest.raises(NotFound):
        await gateway.store.get(Cluster, "os", "team-a")
    code, body = await gateway.call("POST", ns_path("clusters"),
                                    json=cluster("bm", region="dc1", provider="baremetal"))
    assert code == 201, body

    # A provider added to the region a moment ago is accepted at once (a refusal is
    # confirmed with a fresh read, never taken from a cache that is behind).
    dc1.spec.providers = ["baremetal", "openstack"]
    await gateway.store.update(dc1)
    code, body = await gateway.call("POST", ns_path("clusters"),
                                    json=cluster("os", region="dc1", provider="openstack"))
    assert code == 201, body

    # Moving an existing cluster to a provider the region lacks is refused the same way;
    # edits that keep provider and region are not judged.
    patch = {"spec": {"provider": "vsphere"}}
    code, body = await gateway.call("PATCH", ns_path("clusters", name="bm"), json=patch,
                                    content_type="application/merge-patch+json")
    assert code == 422 and body["details"]["causes"][0]["field"] == "spec.provider", body
    code, body = await gateway.call("PATCH", ns_path("clusters", name="early"),
                                    json={"spec": {"description": "still vsphere"}},
                                    content_type="application/merge-patch+json")
    assert code == 200, body


def machine(name: str, role: str, cluster_name: str = "c1") -> dict:
    return {"apiVersion": "kaas.containercloud.dev/v1alpha1", "kind": "Machine",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"cluster": cluster_name, "region": "local", "role": role,
                     "simulated": {"flavor": "small"}}}


async def test_the_last_control_plane_machine_of_a_live_cluster_stays(gateway: Gateway):
    await gateway.store.create(convert(Cluster, cluster("c1")))
    for name, role in (("cp-0", "control-plane"), ("cp-1", "control-plane"), ("w-0", "worker")):
        code, body = await gateway.call("POST", ns_path("machines"), json=machine(name, role))
        assert code == 201, body

    code, body = await gateway.call("DELETE", ns_path("machines", name="cp-0"))
    assert code == 200, body
    code, body = await gateway.call("DELETE", ns_path("machines", name="cp-1"))
    assert code == 409, body
    assert body["reason"] == "Conflict"
    assert "last control-plane node of cluster 'c1'" in body["message"]
    kept = await gateway.store.get(Machine, "cp-1", "team-a")
    assert kept.metadata.deletion_timestamp is None, "refused: not even marked for deletion"
    code, body = await gateway.call("DELETE", ns_path("machines", name="w-0"))
    assert code == 200, body  # workers are not judged

    # Once the Cluster itself goes, its last manager may go with it.
    held = await gateway.store.get(Cluster, "c1", "team-a")
    held.metadata.finalizers = ["test/hold"]
    await gateway.store.update(held)
    code, body = await gateway.call("DELETE", ns_path("clusters", name="c1"))
    assert code == 202, body
    code, body = await gateway.call("DELETE", ns_path("machines", name="cp-1"))
    assert code == 200, body


async def test_a_machine_matches_its_clusters_region_and_provider(gateway: Gateway):
    await gateway.store.create(convert(Cluster, cluster("bm", provider="baremetal")))
    await gateway.store.create(convert(Cluster, cluster("os", provider="openstack")))

    async def post(body: dict) -> tuple[int, dict]:
        return await gateway.call("POST", ns_path("machines"), json=body)

    copied = machine("bm-w-0", "worker", "bm")  # a simulated section copied by mistake
    code, body = await post(copied)
    assert code == 422, body
    assert body["details"]["causes"][0]["field"] == "spec.simulated"
    assert "cluster 'bm' uses provider baremetal: give spec.baremetal, not spec.simulated" \
        in body["message"]
    elsewhere = machine("bm-w-0", "worker", "bm")
    del elsewhere["spec"]["simulated"]
    elsewhere["spec"]["region"] = "dc2"
    code, body = await post(elsewhere)
    assert code == 422 and body["details"]["causes"][0]["field"] == "spec.region", body
    assert "cluster 'bm' is in region local, not dc2" in body["message"]
    with pytest.raises(NotFound):
        await gateway.store.get(Machine, "bm-w-0", "team-a")

    # Bare metal's section has defaults: it may be left out. OpenStack's may not.
    right = machine("bm-w-0", "worker", "bm")
    del right["spec"]["simulated"]
    code, body = await post(right)
    assert code == 201, body
    bare = machine("os-w-0", "worker", "os")
    del bare["spec"]["simulated"]
    code, body = await post(bare)
    assert code == 422 and "spec.openstack is required" in body["message"], body
    bare["spec"]["openstack"] = {"flavor": "m1.large", "image": "ubuntu", "network": "net"}
    code, body = await post(bare)
    assert code == 201, body

    # A cluster on its way out takes no new machines (its deletion would miss them).
    doomed = await gateway.store.get(Cluster, "bm", "team-a")
    doomed.metadata.finalizers = ["test/hold"]
    await gateway.store.update(doomed)
    await gateway.store.delete(Cluster, "bm", "team-a")
    late = machine("bm-w-1", "worker", "bm")
    del late["spec"]["simulated"]
    code, body = await post(late)
    assert code == 409 and "cluster 'bm' is being deleted" in body["message"], body

    # A Machine written before its Cluster is not judged (the provider reports it).
    code, body = await post(machine("early-0", "worker", "not-yet"))
    assert code == 201, body
    # Moving an admitted machine into another section is judged like a create.
    code, body = await gateway.call(
        "PATCH", ns_path("machines", name="bm-w-0"),
        json={"spec": {"simulated": {"flavor": "small"}}},
        content_type="application/merge-patch+json")
    assert code == 422 and body["details"]["causes"][0]["field"] == "spec.simulated", body


async def test_credentials_in_use_stay(gateway: Gateway):
    """Deleting a credential would strand what uses it: a cluster's machines could not be
    made or deleted (a VM left running), a host's BMC no longer reached."""
    code, body = await gateway.call("POST", ns_path("openstackcredentials"), json=os_credential())
    assert code == 201, body
    await gateway.store.create(convert(Cluster, cluster("c-os", provider="openstack",
                                                        credential="os1")))
    code, body = await gateway.call("DELETE", ns_path("openstackcredentials", name="os1"))
    assert code == 409, body
    assert "OpenStackCredential 'os1' is in use by Cluster c-os" in body["message"]
    # The cluster goes; one machine still deprovisions with the credential that made it.
    node = machine("c-os-w-0", "worker", "c-os")
    del node["spec"]["simulated"]
    node["spec"]["openstack"] = {"flavor": "m1", "image": "ubuntu", "network": "net"}
    node["metadata"]["annotations"] = {TARGET_ANNOTATION: "os1"}
    await gateway.store.create(convert(Machine, node))
    await gateway.store.delete(Cluster, "c-os", "team-a")
    code, body = await gateway.call("DELETE", ns_path("openstackcredentials", name="os1"))
    assert code == 409 and "in use by Machine c-os-w-0" in body["message"], body
    assert "nodes could no longer be deleted" in body["message"]
    await gateway.store.get(OpenStackCredential, "os1", "team-a")
    await gateway.store.delete(Machine, "c-os-w-0", "team-a")
    code, body = await gateway.call("DELETE", ns_path("openstackcredentials", name="os1"))
    assert code == 200, body

    await gateway.store.create(convert(BareMetalHostCredential, {
        "metadata": {"name": "rack-a", "namespace": "team-a"},
        "spec": {"region": "local", "username": "admin", "password": "pw"}}))
    for i in range(2):
        await gateway.store.create(convert(BareMetalHost, {
            "metadata": {"name": f"bm-{i}", "namespace": "team-a"},
            "spec": {"region": "local", "bootMacAddress": f"52:54:00:00:00:0{i}",
                     "bmc": {"address": f"redfish://10.0.0.{i}/1",
                             "credentialsName": "rack-a"}}}))
    code, body = await gateway.call("DELETE", ns_path("baremetalhostcredentials", name="rack-a"))
    assert code == 409 and "in use by BareMetalHost bm-0, bm-1" in body["message"], body
    for i in range(2):
        await gateway.store.delete(BareMetalHost, f"bm-{i}", "team-a")
    code, body = await gateway.call("DELETE", ns_path("baremetalhostcredentials", name="rack-a"))
    assert code == 200, body


async def test_a_claimed_host_stays_until_its_machine_goes(gateway: Gateway):
    host = await gateway.store.create(convert(BareMetalHost, {
        "metadata": {"name": "bm-7", "namespace": "team-a",
                     "labels": {MACHINE_LABEL: "demo-cp-0"}},
        "spec": {"region": "local", "bootMacAddress": "52:54:00:00:00:07",
                 "bmc": {"address": "redfish://10.0.0.7/1"}, "consumer": "uid-of-demo-cp-0",
                 "online": True}}))
    code, body = await gateway.call("DELETE", ns_path("baremetalhosts", name="bm-7"))
    assert code == 409, body
    assert "'bm-7' is provisioned for Machine demo-cp-0" in body["message"]
    # The Machine's deprovision releases the claim; then the host may go.
    host.spec.consumer, host.spec.online = "", False
    await gateway.store.update(host)
    code, body = await gateway.call("DELETE", ns_path("baremetalhosts", name="bm-7"))
    assert code == 200, body


async def test_a_release_clusters_run_stays(gateway: Gateway):
    await ensure_default_releases(gateway.store)
    code, body = await gateway.call("POST", ns_path("clusters"),
                                    json=cluster("c1", release="mke-3-7-0"))
    assert code == 201, body
    code, body = await gateway.call("DELETE", "/apis/kaas.containercloud.dev/v1alpha1/"
                                    "clusterreleases/mke-3-7-0")
    assert code == 409 and "in use by Cluster team-a/c1" in body["message"], body
    code, body = await gateway.call("DELETE", "/apis/kaas.containercloud.dev/v1alpha1/"
                                    "clusterreleases/mke-3-8-0")
    assert code == 200, body  # nobody runs it
