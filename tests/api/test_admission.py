"""Release admission: a Cluster names a supported release and only moves along allowed paths."""

from __future__ import annotations

from services.release.defaults import ensure_default_releases
from shared.models import Cluster
from tests.api.conftest import Gateway, cluster, ns_path


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
