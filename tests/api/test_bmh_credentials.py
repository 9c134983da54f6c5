"""BareMetalHostCredential through the API: a credential kind (admin-only writes, password
write-only and redacted), hosts that name one by ``spec.bmc.credentialsName``, and the 422
for a host that gives both a name and an inline password."""

from __future__ import annotations

import json
from typing import Any

from services.api.discovery import resolve
from shared.models import API_VERSION, BareMetalHost, BareMetalHostCredential
from tests.api.conftest import Gateway, ns_path

MERGE = "application/merge-patch+json"
SECRET = "bmc-s3cr3t"
CREDS = "baremetalhostcredentials"
HOSTS = "baremetalhosts"


def credential(name: str = "rack-a", password: str = SECRET) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "BareMetalHostCredential",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"region": "local", "username": "root", "password": password}}


def host(name: str = "bm-0", **bmc: str) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "BareMetalHost",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"region": "local", "bootMacAddress": "52:54:00:00:00:01",
                     "bmc": {"address": "redfish+http://127.0.0.1:8000/redfish/v1/Systems/1",
                             **bmc}}}


async def test_credential_is_write_only_and_admin_only(gateway: Gateway) -> None:
    assert resolve("bmhc") is BareMetalHostCredential
    code, body = await gateway.call("POST", ns_path(CREDS), json=credential(), user="wally")
    assert code == 403, body  # writers may not write credential kinds
    code, created = await gateway.call("POST", ns_path(CREDS), json=credential(), user="ada")
    assert code == 201, created
    assert created["spec"]["password"] == "" and created["spec"]["username"] == "root"
    stored = await gateway.store.get(BareMetalHostCredential, "rack-a", "team-a")
    assert stored.spec.password == SECRET  # kept for the provider
    code, got = await gateway.call("GET", ns_path(CREDS, name="rack-a"), user="rita")
    assert code == 200 and got["spec"]["password"] == ""
    code, listed = await gateway.call("GET", ns_path(CREDS), user="rita")
    assert code == 200 and SECRET not in json.dumps(listed)
    got["spec"]["username"] = "admin"  # a round trip of the redacted object keeps the secret
    code, out = await gateway.call("PUT", ns_path(CREDS, name="rack-a"), json=got, user="ada")
    assert code == 200, out
    stored = await gateway.store.get(BareMetalHostCredential, "rack-a", "team-a")
    assert stored.spec.password == SECRET and stored.spec.username == "admin"


async def test_host_names_a_credential_or_gives_a_password_not_both(gateway: Gateway) -> None:
    code, body = await gateway.call(
        "POST", ns_path(HOSTS), json=host(credentialsName="rack-a", password="hunter2-bmc"))
    assert code == 422, body
    assert body["reason"] == "Invalid"
    cause = body["details"]["causes"][0]
    assert cause["field"] == "spec.bmc"
    assert "credentialsName" in cause["message"] and "password" in cause["message"]
    assert "hunter2" not in json.dumps(body)  # the rejected secret is not echoed
    code, body = await gateway.call("POST", ns_path(HOSTS), json=host(credentialsName="Bad_Name"))
    assert code == 422 and body["details"]["causes"][0]["field"] == "spec.bmc.credentialsName"
    code, created = await gateway.call("POST", ns_path(HOSTS), json=host(credentialsName="rack-a"))
    assert code == 201, created
    assert created["spec"]["bmc"]["credentialsName"] == "rack-a"
    code, created = await gateway.call(
        "POST", ns_path(HOSTS), json=host("bm-1", username="root", password="inline-pw"))
    assert code == 201, created  # inline credentials keep working
    stored = await gateway.store.get(BareMetalHost, "bm-1", "team-a")
    assert stored.spec.bmc.password == "inline-pw" and created["spec"]["bmc"]["password"] == ""


async def test_switching_an_inline_host_to_a_credential(gateway: Gateway) -> None:
    """The redacted password is normally kept on writes; naming a credential drops it."""
    await gateway.call("POST", ns_path(HOSTS), json=host(username="root", password="inline-pw"))
    await gateway.call("POST", ns_path(HOSTS), json=host("bm-1", username="root",
                                                         password="inline-pw"))
    code, got = await gateway.call("GET", ns_path(HOSTS, name="bm-0"))
    got["spec"]["bmc"] = {"address": got["spec"]["bmc"]["address"], "credentialsName": "rack-a"}
    code, out = await gateway.call("PUT", ns_path(HOSTS, name="bm-0"), json=got)
    assert code == 200, out
    stored = await gateway.store.get(BareMetalHost, "bm-0", "team-a")
    assert stored.spec.bmc.credentials_name == "rack-a"
    assert (stored.spec.bmc.password, stored.spec.bmc.username) == ("", "")
    patch = {"spec": {"bmc": {"credentialsName": "rack-a"}}}
    code, out = await gateway.call("PATCH", ns_path(HOSTS, name="bm-1"), json=patch,
                                   content_type=MERGE)
    assert code == 422 and "inline username" in out["message"], out  # the username stays
    patch["spec"]["bmc"]["username"] = None
    code, out = await gateway.call("PATCH", ns_path(HOSTS, name="bm-1"), json=patch,
                                   content_type=MERGE)
    assert code == 200, out
    stored = await gateway.store.get(BareMetalHost, "bm-1", "team-a")
    assert stored.spec.bmc.credentials_name == "rack-a" and stored.spec.bmc.password == ""
