"""Credential secrets are write-only: redacted everywhere, kept on round-trips, never
logged or audited; every write is audited with who/what/when/outcome."""

from __future__ import annotations

import json
import logging

import pytest

from services.api.audit import AuditLog
from shared.models import OpenStackCredential
from tests.api.conftest import Gateway, ns_path, open_watch, os_credential

MERGE = "application/merge-patch+json"
SECRET = "s3cr3t-pw"
PLURAL = "openstackcredentials"


async def test_secret_redacted_in_every_response(gateway: Gateway) -> None:
    w = await open_watch(gateway, ns_path(PLURAL), user="rita")
    try:
        code, created = await gateway.call("POST", ns_path(PLURAL), json=os_credential(),
                                           user="ada")
        assert code == 201
        assert created["spec"]["auth"]["password"] == ""
        assert created["spec"]["auth"]["username"] == "demo"
        event = await w.next()
        assert event["type"] == "ADDED" and event["object"]["spec"]["auth"]["password"] == ""
    finally:
        w.close()
    stored = await gateway.store.get(OpenStackCredential, "os1", "team-a")
    assert stored.spec.auth.password == SECRET  # the store keeps it for the providers
    code, got = await gateway.call("GET", ns_path(PLURAL, name="os1"), user="rita")
    assert code == 200 and got["spec"]["auth"]["password"] == ""
    code, lst = await gateway.call("GET", ns_path(PLURAL), user="ops")
    assert lst["items"][0]["spec"]["auth"]["password"] == ""
    code, allns = await gateway.call("GET", f"/apis/kaas.containercloud.dev/v1alpha1/{PLURAL}")
    assert SECRET not in json.dumps(allns)


async def test_round_trip_keeps_secret_and_patch_can_rotate(gateway: Gateway) -> None:
    code, created = await gateway.call("POST", ns_path(PLURAL), json=os_credential(), user="ada")
    created["spec"]["auth"]["projectName"] = "other"
    code, updated = await gateway.call("PUT", ns_path(PLURAL, name="os1"), json=created,
                                       user="ada")
    assert code == 200, updated
    stored = await gateway.store.get(OpenStackCredential, "os1", "team-a")
    assert stored.spec.auth.password == SECRET and stored.spec.auth.project_name == "other"
    code, _ = await gateway.call("PATCH", ns_path(PLURAL, name="os1"), user="ada",
                                 json={"spec": {"auth": {"password": ""}}}, content_type=MERGE)
    assert code == 200
    assert (await gateway.store.get(OpenStackCredential, "os1", "team-a")).spec.auth.password \
        == SECRET
    code, out = await gateway.call("PATCH", ns_path(PLURAL, name="os1"), user="ada",
                                   json={"spec": {"auth": {"password": "rotated"}}},
                                   content_type=MERGE)
    assert code == 200 and out["spec"]["auth"]["password"] == ""
    assert (await gateway.store.get(OpenStackCredential, "os1", "team-a")).spec.auth.password \
        == "rotated"


async def test_audit_log_records_writes_without_content(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await gateway.call("POST", ns_path(PLURAL), json=os_credential(), user="ada")
    await gateway.call("POST", ns_path(PLURAL), json=os_credential("os2"), user="wally")
    bad = os_credential("os3")
    bad["spec"]["region"] = "BAD"
    await gateway.call("POST", ns_path(PLURAL), json=bad, user="ada")
    await gateway.call("PATCH", ns_path(PLURAL, name="os1"), user="ada",
                       json={"spec": {"auth": {"password": "rotated-pw"}}}, content_type=MERGE)
    await gateway.call("DELETE", ns_path(PLURAL, name="os1"), user="ada")
    await gateway.call("GET", ns_path(PLURAL), user="ada")  # reads are not audited
    async with gateway.session.post(gateway.url + ns_path(PLURAL), json={}) as r:
        assert r.status == 401
    lines = gateway.audit_lines()
    summary = [(e["user"], e["verb"], e["name"], e["code"]) for e in lines]
    assert summary == [
        ("ada", "create", "os1", 201),
        ("wally", "create", "os2", 403),
        ("ada", "create", "os3", 422),
        ("ada", "patch", "os1", 200),
        ("ada", "delete", "os1", 200),
        ("system:anonymous", "create", "", 401),
    ]
    assert all(e["kind"] == "OpenStackCredential" and e["time"] for e in lines)
    assert lines[0]["resourceVersion"] and lines[3]["resourceVersion"]
    raw = gateway.audit_path.read_text()
    assert SECRET not in raw and "rotated-pw" not in raw and "keystone" not in raw
    assert SECRET not in caplog.text and "rotated-pw" not in caplog.text


def test_audit_log_to_standard_output(capfd: pytest.CaptureFixture[str]) -> None:
    """``-`` (what the chart sets): one JSON line per write on the container's log."""
    log = AuditLog("-")
    for name in ("c1", "c2"):
        log.record(user="ada", verb="create", kind="Cluster", namespace="team-a", name=name,
                   code=201, resource_version="7")
    log.close()
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [(e["user"], e["name"], e["code"]) for e in lines] == [("ada", "c1", 201),
                                                                  ("ada", "c2", 201)]
    assert log.entries == [] and log.path is None
