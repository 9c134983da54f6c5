"""The scale subresource (``.../machinepools/<name>/scale``): an autoscaling/v1 Scale as
kube-apiserver serves one for a CRD with ``subresources.scale``, whose writes are updates
of the pool's spec.replicas (authorized, admitted, audited, dry-run as any update)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from services.api.admission import Admission
from shared.models import API_VERSION, MachinePool, Resource, convert
from tests.api.conftest import BASE, Gateway, cluster, ns_path

SELECTOR = "kaas.containercloud.dev/machine-pool=workers"
MERGE = "application/merge-patch+json"


def pool(name: str = "workers", replicas: int = 3, ns: str = "team-a") -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "MachinePool",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"cluster": "c1", "region": "local", "replicas": replicas,
                 "template": {"metadata": {"labels": {"tier": "app"}},
                              "spec": {"simulated": {"flavor": "small"}}}},
    }


def scale_path(name: str = "workers", ns: str = "team-a", plural: str = "machinepools") -> str:
    return ns_path(plural, ns, name) + "/scale"


async def _pool(gw: Gateway, replicas: int = 3, *, status_replicas: int = 2) -> MachinePool:
    """A stored pool whose controller has written status.replicas and status.selector."""
    created = await gw.store.create(convert(MachinePool, pool(replicas=replicas)))
    st = msgspec.structs.replace(created.status, replicas=status_replicas, selector=SELECTOR)
    out = await gw.store.update_status(msgspec.structs.replace(created, status=st))
    assert isinstance(out, MachinePool)
    return out


def _scale(obj: Resource, replicas: int | None = None) -> dict[str, Any]:
    """What kube-apiserver answers for ``obj``'s scale."""
    md = obj.metadata
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": md.name, "namespace": md.namespace, "uid": md.uid,
                     "resourceVersion": md.resource_version,
                     "creationTimestamp": md.creation_timestamp},
        "spec": {"replicas": obj.spec.replicas if replicas is None else replicas},  # type: ignore[attr-defined]
        "status": {"replicas": obj.status.replicas, "selector": SELECTOR},  # type: ignore[attr-defined]
    }


async def _stored(gw: Gateway, name: str = "workers") -> MachinePool:
    obj = await gw.store.get(MachinePool, name, "team-a")
    assert isinstance(obj, MachinePool)
    return obj


async def test_get_answers_the_pools_scale(gateway: Gateway) -> None:
    stored = await _pool(gateway, 3, status_replicas=2)
    code, body = await gateway.call("GET", scale_path())
    assert code == 200, body
    assert body == _scale(stored)
    assert body["spec"] == {"replicas": 3} and body["status"]["replicas"] == 2

    # A pool its controller has not reported on yet: status.replicas 0, no selector.
    await gateway.store.create(convert(MachinePool, pool("fresh", replicas=0)))
    code, body = await gateway.call("GET", scale_path("fresh"))
    assert code == 200 and body["spec"] == {"replicas": 0}, body
    assert body["status"] == {"replicas": 0}

    code, body = await gateway.call("GET", scale_path("absent"))
    assert code == 404 and body["reason"] == "NotFound", body


async def test_put_sets_spec_replicas_with_a_resource_version_precondition(
    gateway: Gateway,
) -> None:
    stored = await _pool(gateway, 3)
    code, current = await gateway.call("GET", scale_path())
    assert code == 200
    sent = {**current, "spec": {"replicas": 5}, "status": {"replicas": 99}}
    code, body = await gateway.call("PUT", scale_path(), json=sent)
    assert code == 200, body
    after = await _stored(gateway)
    assert after.spec.replicas == 5
    assert after.metadata.generation == stored.metadata.generation + 1
    assert after.spec.template == stored.spec.template, "nothing but replicas changes"
    assert after.status.replicas == 2, "a Scale's status is ignored"
    assert body == _scale(after)

    # The GET's resourceVersion is now stale: a conflict, nothing written.
    code, body = await gateway.call("PUT", scale_path(), json={**current,
                                                                "spec": {"replicas": 1}})
    assert code == 409 and body["reason"] == "Conflict", body
    assert (await _stored(gateway)).spec.replicas == 5

    # Without a resourceVersion the update is unconditional, as kube-apiserver's.
    code, body = await gateway.call("PUT", scale_path(),
                                    json={"kind": "Scale", "apiVersion": "autoscaling/v1",
                                          "metadata": {"name": "workers"},
                                          "spec": {"replicas": 0}})
    assert code == 200 and body["spec"] == {"replicas": 0}, body
    assert (await _stored(gateway)).spec.replicas == 0

    # A Scale PUT with no count is one of zero: client-go leaves a 0 out of the body.
    await gateway.call("PATCH", scale_path(), json={"spec": {"replicas": 4}},
                       content_type=MERGE)
    assert (await _stored(gateway)).spec.replicas == 4
    code, body = await gateway.call("PUT", scale_path(), json={"spec": {}})
    assert code == 200 and body["spec"] == {"replicas": 0}, body
    assert (await _stored(gateway)).spec.replicas == 0


async def test_patch_merges_into_the_scale(gateway: Gateway) -> None:
    await _pool(gateway, 3)
    code, body = await gateway.call("PATCH", scale_path(), json={"spec": {"replicas": 7}},
                                    content_type=MERGE)
    assert code == 200 and body["spec"] == {"replicas": 7}, body
    after = await _stored(gateway)
    assert after.spec.replicas == 7 and body["metadata"]["resourceVersion"] == \
        after.metadata.resource_version
    # A patch that leaves replicas out keeps them.
    code, body = await gateway.call("PATCH", scale_path(), json={"status": {"replicas": 1}},
                                    content_type=MERGE)
    assert code == 200 and body["spec"] == {"replicas": 7}, body
    after = await _stored(gateway)
    assert after.status.replicas == 2, "a Scale's status is ignored"
    # A resourceVersion in the patch is a precondition.
    stale = {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 2}}
    code, body = await gateway.call("PATCH", scale_path(), json=stale, content_type=MERGE)
    assert code == 409, body
    fresh = {"metadata": {"resourceVersion": after.metadata.resource_version},
             "spec": {"replicas": 2}}
    code, body = await gateway.call("PATCH", scale_path(), json=fresh, content_type=MERGE)
    assert code == 200 and body["spec"] == {"replicas": 2}, body
    # Only merge patches, as the object's own PATCH.
    code, body = await gateway.call("PATCH", scale_path(), json={"spec": {"replicas": 4}})
    assert code == 415, body
    assert (await _stored(gateway)).spec.replicas == 2


@pytest.mark.parametrize(("method", "body", "code", "field"), [
    ("PUT", {"spec": {"replicas": -1}}, 422, "spec.replicas"),
    ("PUT", {"spec": {"replicas": "three"}}, 422, "spec.replicas"),
    ("PUT", {"spec": {"replicas": 2.5}}, 422, "spec.replicas"),
    ("PUT", {"spec": {"replicas": True}}, 422, "spec.replicas"),
    ("PUT", {"spec": {"replicas": 1001}}, 422, "spec.replicas"),  # the model's maximum
    ("PUT", {"spec": {"replicas": 10**30}}, 422, "spec.replicas"),
    ("PUT", {"spec": {"replica": 3}}, 422, "spec.replica"),
    ("PUT", {"spec": 3}, 422, "spec"),
    ("PUT", {"kind": "MachinePool", "spec": {"replicas": 3}}, 400, None),
    ("PUT", {"apiVersion": "apps/v1", "spec": {"replicas": 3}}, 400, None),
    ("PUT", {"metadata": {"name": "other"}, "spec": {"replicas": 3}}, 400, None),
    ("PUT", {"metadata": {"namespace": "team-b"}, "spec": {"replicas": 3}}, 400, None),
    ("PUT", {"metadata": {"resourceVersion": 5}, "spec": {"replicas": 3}}, 400, None),
    ("PUT", {"metadata": "x", "spec": {"replicas": 3}}, 400, None),
    ("PUT", {"spec": {"replicas": 3}, "extra": 1}, 400, None),
    ("PUT", [1, 2], 400, None),
    ("PATCH", {"spec": {"replicas": None}}, 422, "spec.replicas"),
    ("PATCH", {"spec": {"replicas": -3}}, 422, "spec.replicas"),
    ("PATCH", {"spec": {"replicas": "3"}}, 422, "spec.replicas"),
    ("PATCH", {"spec": {"replicas": 5000}}, 422, "spec.replicas"),
    ("PATCH", {"spec": None}, 422, "spec.replicas"),
    ("PATCH", {"metadata": {"name": "other"}}, 400, None),
    ("PATCH", {"metadata": {"resourceVersion": 7}}, 400, None),
    ("PATCH", "replicas", 400, None),
])
async def test_bad_bodies_are_refused_with_a_reason(
    gateway: Gateway, method: str, body: Any, code: int, field: str | None
) -> None:
    stored = await _pool(gateway, 3)
    got, answer = await gateway.call(method, scale_path(), json=body,
                                     content_type=MERGE if method == "PATCH" else None)
    assert got == code, answer
    assert answer["kind"] == "Status" and answer["message"], answer
    if field is not None:
        assert answer["reason"] == "Invalid"
        assert field in answer["message"]
        assert [c["field"] for c in answer["details"]["causes"]] == [field], answer
    after = await _stored(gateway)
    assert after.metadata.resource_version == stored.metadata.resource_version, "nothing written"


async def test_malformed_json_is_a_bad_request(gateway: Gateway) -> None:
    await _pool(gateway)
    for method, ctype in (("PUT", "application/json"), ("PATCH", MERGE)):
        code, body = await gateway.call(method, scale_path(), data=b"{nope",
                                        content_type=ctype)
        assert code == 400 and "malformed JSON" in body["message"], body


async def test_a_kind_without_scale_is_not_found(gateway: Gateway) -> None:
    code, _ = await gateway.call("POST", ns_path("clusters"), json=cluster("c1"))
    assert code == 201
    path = scale_path("c1", plural="clusters")
    for method, body, ctype in (("GET", None, None),
                                ("PUT", {"spec": {"replicas": 1}}, None),
                                ("PATCH", {"spec": {"replicas": 1}}, MERGE)):
        code, answer = await gateway.call(method, path, json=body, content_type=ctype)
        assert code == 404 and answer["reason"] == "NotFound", (method, answer)
        assert "no scale subresource" in answer["message"]
    code, answer = await gateway.call("GET", f"{BASE}/regions/local/scale")
    assert code == 404, answer


async def test_dry_run_answers_the_scale_and_stores_nothing(gateway: Gateway) -> None:
    stored = await _pool(gateway, 3)
    code, current = await gateway.call("GET", scale_path())
    code, body = await gateway.call("PUT", scale_path() + "?dryRun=All",
                                    json={**current, "spec": {"replicas": 6}})
    assert code == 200 and body["spec"] == {"replicas": 6}, body
    code, body = await gateway.call("PATCH", scale_path() + "?dryRun=All",
                                    json={"spec": {"replicas": 8}}, content_type=MERGE)
    assert code == 200 and body["spec"] == {"replicas": 8}, body
    # Every check still answers: the model's maximum, a stale version, the dryRun value.
    code, body = await gateway.call("PATCH", scale_path() + "?dryRun=All",
                                    json={"spec": {"replicas": 1001}}, content_type=MERGE)
    assert code == 422 and "spec.replicas" in body["message"], body
    stale = {**current, "metadata": {**current["metadata"], "resourceVersion": "1"}}
    code, body = await gateway.call("PUT", scale_path() + "?dryRun=All", json=stale)
    assert code == 409, body
    code, body = await gateway.call("PUT", scale_path() + "?dryRun=yes", json=current)
    assert code == 400 and "dryRun must be All" in body["message"], body
    after = await _stored(gateway)
    assert after.spec.replicas == 3
    assert after.metadata.resource_version == stored.metadata.resource_version


async def test_authorized_as_an_update_of_the_pool(gateway: Gateway) -> None:
    await _pool(gateway, 3)
    code, body = await gateway.call("GET", scale_path(), user="rita")  # reader in team-a
    assert code == 200 and body["spec"] == {"replicas": 3}, body
    for method, ctype, verb in (("PUT", None, "update"), ("PATCH", MERGE, "patch")):
        code, body = await gateway.call(method, scale_path(), user="rita",
                                        json={"spec": {"replicas": 9}}, content_type=ctype)
        assert code == 403 and body["reason"] == "Forbidden", body
        assert f'cannot {verb} resource "machinepools/scale"' in body["message"]
    code, body = await gateway.call("GET", scale_path(), user="nobody")
    assert code == 403, body
    assert (await _stored(gateway)).spec.replicas == 3
    code, body = await gateway.call("PATCH", scale_path(), user="wally",  # writer in team-a
                                    json={"spec": {"replicas": 4}}, content_type=MERGE)
    assert code == 200 and body["spec"] == {"replicas": 4}, body


async def test_a_scale_write_is_admitted_and_audited(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = await _pool(gateway, 3)
    admitted: list[tuple[int, int]] = []
    real = Admission.__call__

    async def spy(self: Admission, obj: Resource, was: Resource | None = None) -> None:
        admitted.append((obj.spec.replicas, was.spec.replicas))  # type: ignore[union-attr,attr-defined]
        await real(self, obj, was)

    monkeypatch.setattr(Admission, "__call__", spy)
    code, body = await gateway.call("PATCH", scale_path(), user="wally",
                                    json={"spec": {"replicas": 4}}, content_type=MERGE)
    assert code == 200, body
    code, body = await gateway.call("PUT", scale_path(), user="wally",
                                    json={"spec": {"replicas": 5}})
    assert code == 200, body
    assert admitted == [(4, 3), (5, 4)]
    code, _ = await gateway.call("PUT", scale_path(), user="rita",
                                 json={"spec": {"replicas": 6}})
    assert code == 403
    after = await _stored(gateway)
    lines = [e for e in gateway.audit_lines() if e["kind"] == "MachinePool"]
    assert [(e["user"], e["verb"], e["subresource"], e["name"], e["code"]) for e in lines] == [
        ("wally", "patch", "scale", "workers", 200),
        ("wally", "update", "scale", "workers", 200),
        ("rita", "update", "scale", "workers", 403),
    ]
    assert lines[1]["resourceVersion"] == after.metadata.resource_version
    assert lines[0]["resourceVersion"] != stored.metadata.resource_version


async def test_discovery_and_openapi_list_the_scale_subresource(gateway: Gateway) -> None:
    code, res = await gateway.call("GET", BASE, user="nobody")
    assert code == 200
    scale = [r for r in res["resources"] if r["name"].endswith("/scale")]
    assert scale == [{"name": "machinepools/scale", "singularName": "", "namespaced": True,
                      "group": "autoscaling", "version": "v1", "kind": "Scale",
                      "verbs": ["get", "patch", "update"]}]
    async with gateway.session.get(gateway.url + "/openapi.json") as r:
        doc = await r.json()
    path = f"{BASE}/namespaces/{{namespace}}/machinepools/{{name}}/scale"
    assert {"get", "put", "patch"} <= set(doc["paths"][path])
    assert doc["paths"][path]["put"]["requestBody"]["content"]["application/json"][
        "schema"] == {"$ref": "#/components/schemas/Scale"}
    assert doc["components"]["schemas"]["Scale"]["properties"]["kind"]["const"] == "Scale"
    assert not any(p.endswith("/scale") and "/clusters/" in p for p in doc["paths"])


async def test_an_object_named_like_a_subresource_is_the_object(gateway: Gateway) -> None:
    """``.../machinepools/scale`` is the pool named scale, not a subresource; the audit
    says so too."""
    code, body = await gateway.call("POST", ns_path("machinepools"), json=pool("scale", 1))
    assert code == 201, body
    code, body = await gateway.call("PATCH", ns_path("machinepools", name="scale"),
                                    json={"spec": {"replicas": 2}}, content_type=MERGE)
    assert code == 200 and body["kind"] == "MachinePool", body
    code, body = await gateway.call("PATCH", scale_path("scale"),
                                    json={"spec": {"replicas": 3}}, content_type=MERGE)
    assert code == 200 and body["kind"] == "Scale", body
    lines = [e for e in gateway.audit_lines() if e["kind"] == "MachinePool"]
    assert [(e["verb"], e["subresource"]) for e in lines] == [
        ("create", ""), ("patch", ""), ("patch", "scale")]
