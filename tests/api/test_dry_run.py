"""Server-side dry run (``?dryRun=All``): every check a write makes - schema, admission,
existence, resourceVersion, the store's own rules - answered as the write would be, and
nothing stored."""

from __future__ import annotations

import pytest

from services.release.defaults import ensure_default_releases
from shared.models import Cluster, convert
from shared.store import NotFound
from tests.api.conftest import Gateway, cluster, ns_path

DRY = "?dryRun=All"


async def test_create_checks_everything_and_stores_nothing(gateway: Gateway) -> None:
    await ensure_default_releases(gateway.store)
    code, body = await gateway.call("POST", ns_path("clusters") + DRY,
                                    json=cluster("c1", release="mke-3-7-0"))
    assert code == 201, body
    assert body["metadata"]["uid"] and body["metadata"]["generation"] == 1
    with pytest.raises(NotFound):
        await gateway.store.get(Cluster, "c1", "team-a")
    code, body = await gateway.call("POST", ns_path("clusters") + DRY,
                                    json=cluster("c1", release="mke-9-9-9"))
    assert code == 422 and body["details"]["causes"][0]["field"] == "spec.release", body
    code, body = await gateway.call("POST", ns_path("clusters") + "?dryRun=yes",
                                    json=cluster("c1", release="mke-3-7-0"))
    assert code == 400 and "dryRun must be All" in body["message"], body

    code, _ = await gateway.call("POST", ns_path("clusters"), json=cluster("c1",
                                                                          release="mke-3-7-0"))
    assert code == 201
    code, body = await gateway.call("POST", ns_path("clusters") + DRY,
                                    json=cluster("c1", release="mke-3-7-0"))
    assert code == 409 and body["reason"] == "AlreadyExists", body


async def test_update_patch_and_delete_answer_as_the_write_would(gateway: Gateway) -> None:
    stored = await gateway.store.create(convert(Cluster, cluster("c2")))
    code, current = await gateway.call("GET", ns_path("clusters", name="c2"))
    edited = {**current, "spec": {**current["spec"], "description": "dry"}}
    code, body = await gateway.call("PUT", ns_path("clusters", name="c2") + DRY,
                                    json=edited)
    assert code == 200 and body["metadata"]["generation"] == 2, body
    stale = {**edited, "metadata": {**edited["metadata"], "resourceVersion": "1"}}
    code, body = await gateway.call("PUT", ns_path("clusters", name="c2") + DRY,
                                    json=stale)
    assert code == 409, body
    code, body = await gateway.call("PATCH", ns_path("clusters", name="c2") + DRY,
                                    json={"spec": {"description": "patched"}},
                                    content_type="application/merge-patch+json")
    assert code == 200 and body["spec"]["description"] == "patched", body
    code, body = await gateway.call("PUT", ns_path("clusters", name="c2") + "/status" + DRY,
                                    json={**current, "status": {"phase": "Ready"}})
    assert code == 200 and body["status"]["phase"] == "Ready", body
    after = await gateway.store.get(Cluster, "c2", "team-a")
    assert after.spec.description == stored.spec.description
    assert after.status.phase == stored.status.phase
    assert after.metadata.resource_version == stored.metadata.resource_version

    code, body = await gateway.call("DELETE", ns_path("clusters", name="c2") + DRY)
    assert code == 200, body
    held = await gateway.store.get(Cluster, "c2", "team-a")
    held.metadata.finalizers = ["test/hold"]
    await gateway.store.update(held)
    code, body = await gateway.call("DELETE", ns_path("clusters", name="c2") + DRY)
    assert code == 202 and body["metadata"]["deletionTimestamp"], body
    kept = await gateway.store.get(Cluster, "c2", "team-a")
    assert kept.metadata.deletion_timestamp is None, "a dry run marks nothing"
