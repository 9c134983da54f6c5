"""Deletes that would strand what depends on the object are refused (409) and store
nothing: the last control-plane Machine of a live Cluster, a credential or release in use,
a claimed host."""

from __future__ import annotations

from services.release.defaults import ensure_default_releases
from shared.models import (
    MACHINE_LABEL,
    TARGET_ANNOTATION,
    BareMetalHost,
    Cluster,
    Machine,
    OpenStackCredential,
    convert,
)
from tests.api.conftest import Gateway, cluster, machine, ns_path, os_credential
from tests.inventory import rack_with_hosts


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

    await rack_with_hosts(gateway.store, "team-a", password="pw")
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
