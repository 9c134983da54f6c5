"""Admission of writes: a Cluster names a supported release, moves only along allowed
paths and uses a provider its Region offers; a Machine fits its Cluster; a
MachineHealthCheck has sound fields and sits in its Cluster's region; a MachinePool fits
its Cluster as its Machines would; a GracefulRebootRequest lists only its Cluster's
Machines."""

from __future__ import annotations

from typing import Any

import pytest

from services.release.defaults import ensure_default_releases
from shared.models import (
    API_VERSION,
    Cluster,
    GracefulRebootRequest,
    Machine,
    MachineHealthCheck,
    MachinePool,
    ObjectMeta,
    Region,
    RegionSpec,
    convert,
)
from shared.store import NotFound
from tests.api.conftest import Gateway, cluster, machine, ns_path
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


async def test_where_clusters_and_machines_are_made_stays(gateway: Gateway):
    """Nothing moves a cluster to another region or provider, a machine to another cluster,
    or remakes a node for a changed provider section: such writes are refused, not stored
    as a lie. What is followed (a release, a role, a credential, a section before the
    node exists) still changes."""
    await gateway.store.create(convert(Cluster, cluster("c1")))
    await gateway.store.create(convert(Cluster, cluster("c2")))

    async def patch(plural: str, name: str, spec: dict) -> tuple[int, dict]:
        return await gateway.call("PATCH", ns_path(plural, name=name), json={"spec": spec},
                                  content_type="application/merge-patch+json")

    for change, field in (({"region": "dc2"}, "spec.region"),
                          ({"provider": "baremetal"}, "spec.provider")):
        code, body = await patch("clusters", "c1", change)
        assert code == 422, body
        assert body["details"]["causes"][0]["field"] == field
        assert "field is immutable (was " in body["message"]
    code, body = await patch("clusters", "c1", {"description": "the team's dev cluster"})
    assert code == 200, body

    code, body = await gateway.call("POST", ns_path("machines"), json=machine("w-0", "worker"))
    assert code == 201, body
    code, body = await patch("machines", "w-0", {"cluster": "c2"})
    assert code == 422 and "spec.cluster: field is immutable (was c1)" in body["message"], body
    code, body = await patch("machines", "w-0", {"simulated": {"flavor": "large"}})
    assert code == 200, body  # no node yet: the provider will make it from this
    made = await gateway.store.get(Machine, "w-0", "team-a")
    made.status.provider_id = "simulated://w-0"
    await gateway.store.update_status(made)
    code, body = await patch("machines", "w-0", {"simulated": {"flavor": "small"}})
    assert code == 422, body
    assert 'spec.simulated: field is immutable (was {"flavor":"large"}): its node ' \
           "simulated://w-0 is made" in body["message"]
    assert (await gateway.store.get(Machine, "w-0", "team-a")).spec.simulated.flavor == "large"
    code, body = await patch("machines", "w-0", {"role": "control-plane"})
    assert code == 200, body


async def test_maintenance_mode_follows_the_cluster_and_waits_for_upgrades(gateway: Gateway):
    """A Machine enters maintenance only while its Cluster is in it; the Cluster leaves it
    only once no Machine is in it, and enters it only while no upgrade is under way. Each
    refusal is a 409 naming spec.maintenance, and stores nothing."""
    await ensure_default_releases(gateway.store)
    code, body = await gateway.call("POST", ns_path("clusters"),
                                    json=cluster("c1", release="mke-3-7-0"))
    assert code == 201, body
    c1 = await gateway.store.get(Cluster, "c1", "team-a")
    c1.status.release, c1.status.phase = "mke-3-7-0", "Ready"  # play LCM: it runs 3.7.0
    await gateway.store.update_status(c1)
    code, body = await gateway.call("POST", ns_path("machines"), json=machine("w-0", "worker"))
    assert code == 201, body

    async def patch(plural: str, name: str, spec: dict) -> tuple[int, dict]:
        return await gateway.call("PATCH", ns_path(plural, name=name), json={"spec": spec},
                                  content_type="application/merge-patch+json")

    def refused(code: int, body: dict, message: str) -> None:
        assert (code, body["reason"]) == (409, "Conflict"), body
        assert body["details"]["causes"][0]["field"] == "spec.maintenance", body
        assert body["message"] == message

    # A machine of a cluster that is not in maintenance: refused, on update and on create.
    code, body = await patch("machines", "w-0", {"maintenance": True})
    refused(code, body, "Machine 'w-0' cannot enter maintenance: cluster 'c1' is not in "
                        "maintenance; set the Cluster's spec.maintenance first")
    assert not (await gateway.store.get(Machine, "w-0", "team-a")).spec.maintenance
    early = machine("w-1", "worker") | {}
    early["spec"] = early["spec"] | {"maintenance": True}
    code, body = await gateway.call("POST", ns_path("machines"), json=early)
    assert code == 409 and "cluster 'c1' is not in maintenance" in body["message"], body
    with pytest.raises(NotFound):
        await gateway.store.get(Machine, "w-1", "team-a")

    # The cluster first, then its machine.
    code, body = await patch("clusters", "c1", {"maintenance": True})
    assert code == 200 and body["spec"]["maintenance"] is True, body
    code, body = await patch("machines", "w-0", {"maintenance": True})
    assert code == 200 and body["spec"]["maintenance"] is True, body
    code, body = await gateway.call("POST", ns_path("machines"), json=early)
    assert code == 201, body

    # The cluster stays in maintenance while its machines are; other edits are not judged.
    code, body = await patch("clusters", "c1", {"maintenance": False})
    refused(code, body, "Cluster 'c1' cannot leave maintenance while its machines are in "
                        "maintenance (w-0, w-1): clear their spec.maintenance first")
    assert (await gateway.store.get(Cluster, "c1", "team-a")).spec.maintenance
    code, body = await patch("clusters", "c1", {"description": "host work in progress"})
    assert code == 200, body
    for name in ("w-0", "w-1"):
        code, body = await patch("machines", name, {"maintenance": False})
        assert code == 200, body
    code, body = await patch("clusters", "c1", {"maintenance": False})
    assert code == 200 and not body["spec"].get("maintenance"), body

    # An upgrade under way (asked for, not finished) keeps the cluster out of maintenance.
    code, body = await patch("clusters", "c1", {"release": "mke-3-7-1"})
    assert code == 200, body
    code, body = await patch("clusters", "c1", {"maintenance": True})
    refused(code, body, "Cluster 'c1' cannot enter maintenance while the upgrade mke-3-7-0 "
                        "-> mke-3-7-1 is in progress: wait for it to finish")
    c1 = await gateway.store.get(Cluster, "c1", "team-a")
    assert not c1.spec.maintenance
    c1.status.release, c1.status.phase = "mke-3-7-1", "Ready"  # the upgrade is done
    await gateway.store.update_status(c1)
    code, body = await patch("clusters", "c1", {"maintenance": True})
    assert code == 200, body
    # In maintenance, an upgrade may still be asked for: LCM holds it until maintenance ends.
    code, body = await patch("clusters", "c1", {"release": "mke-3-8-0"})
    assert code == 200, body


def health_check(name: str = "hc", cluster_name: str = "c1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "MachineHealthCheck",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"cluster": cluster_name, "region": "local", **spec}}


@pytest.mark.parametrize(("spec", "field", "words"), [
    ({"maxUnhealthy": "140%"}, "spec", "maxUnhealthy must be a count"),
    ({"maxUnhealthy": "some"}, "spec", "maxUnhealthy must be a count"),
    ({"maxUnhealthy": -1}, "spec", "maxUnhealthy must be a count"),
    ({"remediation": {"strategy": "Recreate"}}, "spec.remediation.strategy", "Invalid enum"),
    ({"nodeStartupTimeoutSeconds": -5}, "spec.nodeStartupTimeoutSeconds", ">= 0"),
    ({"unhealthyConditions": [{"type": "Ready", "status": "False", "timeoutSeconds": -1}]},
     "spec.unhealthyConditions[0].timeoutSeconds", ">= 0"),
    ({"remediation": {"retryIntervalSeconds": -1}}, "spec.remediation.retryIntervalSeconds",
     ">= 0"),
])
async def test_a_health_check_with_a_bad_field_is_refused(
    gateway: Gateway, spec: dict[str, Any], field: str, words: str
) -> None:
    code, body = await gateway.call("POST", ns_path("machinehealthchecks"),
                                    json=health_check(**spec))
    assert code == 422, body
    assert words in body["message"], body
    assert body["details"]["causes"][0]["field"] == field, body
    assert await gateway.store.list_all(MachineHealthCheck, "team-a") == []


async def test_a_health_check_names_any_cluster_but_sits_in_its_region(gateway: Gateway):
    # Written before its Cluster (as a Machine may be): nothing to judge against yet.
    code, body = await gateway.call("POST", ns_path("machinehealthchecks"),
                                    json=health_check("early", "later", maxUnhealthy="40%"))
    assert code == 201, body
    assert body["spec"]["maxUnhealthy"] == "40%"
    code, body = await gateway.call("POST", ns_path("clusters"),
                                    json=cluster("dc2-cluster", region="dc2"))
    assert code == 201, body
    code, body = await gateway.call("POST", ns_path("machinehealthchecks"),
                                    json=health_check("hc", "dc2-cluster", maxUnhealthy=2))
    assert code == 422, body
    assert body["details"]["causes"][0]["field"] == "spec.region"
    assert "is in region dc2, not local" in body["message"]
    code, body = await gateway.call(
        "POST", ns_path("machinehealthchecks"),
        json=health_check("hc", "dc2-cluster", maxUnhealthy=2) | {
            "spec": {"cluster": "dc2-cluster", "region": "dc2", "maxUnhealthy": 2}})
    assert code == 201, body
    # Defaults as documented: Ready False/Unknown for 300 s, 1200 s to start, 2 reboots.
    stored = await gateway.store.get(MachineHealthCheck, "hc", "team-a")
    assert [(c.type, c.status, c.timeout_seconds) for c in stored.spec.unhealthy_conditions] \
        == [("Ready", "False", 300), ("Ready", "Unknown", 300)]
    assert stored.spec.node_startup_timeout_seconds == 1200
    rem = stored.spec.remediation
    assert (rem.strategy, rem.retry_limit, rem.retry_interval_seconds) == ("Reboot", 2, 300)


async def test_no_machine_has_two_health_checks(gateway: Gateway) -> None:
    """Each check would count and reboot the machine on its own, and their requests would
    overwrite each other's on the Machine."""
    async def put(name: str, cluster_name: str, labels: dict[str, str]) -> tuple[int, Any]:
        return await gateway.call("POST", ns_path("machinehealthchecks"), json=health_check(
            name, cluster_name, selector={"matchLabels": labels}))

    assert (await put("workers", "c1", {"role": "worker"}))[0] == 201
    assert (await put("cps", "c1", {"role": "control-plane"}))[0] == 201, "disjoint: fine"
    assert (await put("other-cluster", "c2", {}))[0] == 201, "another cluster's machines"
    for name, labels in (("all", {}), ("gpu-workers", {"role": "worker", "gpu": "yes"}),
                         ("gpus", {"gpu": "yes"})):
        code, body = await put(name, "c1", labels)
        assert code == 409, (name, body)
        assert "'workers' already covers machines of cluster 'c1'" in body["message"] or \
            "'cps' already covers machines of cluster 'c1'" in body["message"], body
        assert body["details"]["causes"][0]["field"] == "spec.selector"
    names = {c.metadata.name for c in await gateway.store.list_all(MachineHealthCheck, "team-a")}
    assert names == {"workers", "cps", "other-cluster"}, "nothing stored on refusal"

    # Widening a check onto another's machines is refused too; other edits are not judged.
    path = ns_path("machinehealthchecks", name="cps")
    code, body = await gateway.call("PATCH", path, json={"spec": {"selector": {
        "matchLabels": None}}}, content_type="application/merge-patch+json")
    assert code == 409 and "'workers' already covers" in body["message"], body
    code, body = await gateway.call("PATCH", path, json={"spec": {"maxUnhealthy": 1}},
                                    content_type="application/merge-patch+json")
    assert code == 200, body


def pool(name: str = "workers", cluster_name: str = "c1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "MachinePool",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"cluster": cluster_name, "region": "local", "replicas": 2,
                     "template": {"spec": {"simulated": {}}}} | spec}


@pytest.mark.parametrize(("body", "code", "field", "words"), [
    (pool(replicas=1001), 422, "spec.replicas", "<= 1000"),
    (pool(replicas=-1), 422, "spec.replicas", ">= 0"),
    (pool(deletePolicy="Random"), 422, "spec.deletePolicy", "Invalid enum"),
    (pool(template={"spec": {"role": "control-plane"}}), 422, "spec.template.spec",
     "unknown field `role`"),
    (pool(template={"metadata": {"labels": {"kaas.containercloud.dev/machine-pool": "x"}}}),
     422, "spec.template.metadata.labels", "machine-pool is set by the pool"),
    (pool("p" * 241), 422, "metadata.name", "at most 240 characters"),
    (pool(template={"spec": {"openstack": {"flavor": "f", "image": "i", "network": "n"}}}),
     422, "spec.template.spec.openstack",
     "cluster 'c1' uses provider simulated: give spec.template.spec.simulated, not "
     "spec.template.spec.openstack"),
    (pool(region="dc2"), 422, "spec.region", "cluster 'c1' is in region local, not dc2"),
    (pool(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0}}), 422,
     "spec.strategy", "maxSurge and maxUnavailable cannot both be 0"),
    (pool(strategy={"type": "Recreate"}), 422, "spec.strategy.type", "Invalid enum"),
])
async def test_a_machine_pool_is_judged_against_its_model_and_cluster(
    gateway: Gateway, body: dict[str, Any], code: int, field: str, words: str,
) -> None:
    await gateway.store.create(convert(Cluster, cluster("c1")))
    got, answer = await gateway.call("POST", ns_path("machinepools"), json=body)
    assert got == code, answer
    assert words in answer["message"], answer
    assert answer["details"]["causes"][0]["field"] == field, answer
    assert await gateway.store.list_all(MachinePool, "team-a") == []


async def test_a_machine_pool_stays_with_its_cluster_and_may_change_its_template(
    gateway: Gateway,
) -> None:
    code, body = await gateway.call("POST", ns_path("machinepools"),
                                    json=pool("early", "later"))
    assert code == 201, body  # written before its Cluster: the pool waits for it
    await gateway.store.create(convert(Cluster, cluster("c1")))
    code, body = await gateway.call("POST", ns_path("machinepools"), json=pool())
    assert code == 201, body
    assert (await gateway.store.get(MachinePool, "workers", "team-a")).spec.delete_policy \
        == "Newest"
    code, body = await gateway.call(
        "PATCH", ns_path("machinepools", name="workers"),
        json={"spec": {"replicas": 5, "template": {"spec": {"simulated": {"flavor": "big"}}}}},
        content_type="application/merge-patch+json")
    assert code == 200 and body["spec"]["replicas"] == 5, body
    code, body = await gateway.call(
        "PATCH", ns_path("machinepools", name="workers"), json={"spec": {"cluster": "c2"}},
        content_type="application/merge-patch+json")
    assert code == 422 and body["details"]["causes"][0]["field"] == "spec.cluster", body
    assert "field is immutable (was c1)" in body["message"]
    stored = await gateway.store.get(MachinePool, "workers", "team-a")
    assert (stored.spec.cluster, stored.spec.replicas) == ("c1", 5)

    doomed = await gateway.store.get(Cluster, "c1", "team-a")
    doomed.metadata.finalizers = ["test/hold"]
    await gateway.store.update(doomed)
    await gateway.store.delete(Cluster, "c1", "team-a")
    code, body = await gateway.call("POST", ns_path("machinepools"), json=pool("late"))
    assert code == 409 and "cluster 'c1' is being deleted" in body["message"], body


def reboot(name: str = "c1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "GracefulRebootRequest",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"region": "local", **spec}}


async def test_a_graceful_reboot_lists_only_its_clusters_machines(gateway: Gateway) -> None:
    # Written before its Cluster: nothing to judge against yet (it waits, ClusterNotFound).
    code, body = await gateway.call("POST", ns_path("gracefulrebootrequests"),
                                    json=reboot("later", machines=["later-w0"]))
    assert code == 201, body
    for obj in (cluster("c1"), machine("c1-cp0", "control-plane"), machine("c1-w0", "worker"),
                cluster("c2"), machine("c2-w0", "worker", "c2")):
        code, body = await gateway.call(
            "POST", ns_path("clusters" if obj["kind"] == "Cluster" else "machines"), json=obj)
        assert code == 201, body

    refusals = [
        (reboot(machines=["c1-w0", "c2-w0"]), "spec.machines[1]",
         "cluster 'c1' has no machine 'c2-w0'"),
        (reboot(machines=["c1-w0", "c1-w0"]), "spec.machines[1]", "'c1-w0' is listed twice"),
        (reboot(machines=["c1-w9"]), "spec.machines[0]", "cluster 'c1' has no machine 'c1-w9'"),
        (reboot() | {"spec": {"region": "dc2"}}, "spec.region",
         "cluster 'c1' is in region local, not dc2"),
        (reboot(machines=["Not_A_Name"]), "spec.machines[0]", "Expected `str` matching"),
    ]
    for body_in, field, words in refusals:
        code, body = await gateway.call("POST", ns_path("gracefulrebootrequests"), json=body_in)
        assert code == 422, body
        assert body["details"]["causes"][0]["field"] == field, body
        assert words in body["message"], body
    names = [r.metadata.name for r in await gateway.store.list_all(GracefulRebootRequest,
                                                                    "team-a")]
    assert names == ["later"], "nothing half-written"

    code, body = await gateway.call("POST", ns_path("gracefulrebootrequests"),
                                    json=reboot(machines=["c1-w0"]))
    assert code == 201, body
    code, body = await gateway.call(
        "PATCH", ns_path("gracefulrebootrequests") + "/c1",
        json={"spec": {"machines": ["c1-w0", "c2-w0"]}},
        content_type="application/merge-patch+json")
    assert code == 422, body
    stored = await gateway.store.get(GracefulRebootRequest, "c1", "team-a")
    assert stored.spec.machines == ["c1-w0"]
