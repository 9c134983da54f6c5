"""Focused repros of what the fuzz pass found about names in the URL path.

Object names and namespaces from the path end up in store keys; a name the key scheme
cannot hold must be refused as a client error, and two different (namespace, name) pairs
must never address the same object.
"""

from __future__ import annotations

import requests

from shared.models import API_VERSION
from tests.fuzz.conftest import Gateway

BASE = f"/apis/{API_VERSION}"


def test_non_ascii_name_in_path_is_a_client_error(gateway: Gateway) -> None:
    for method, path in [
        ("GET", f"{BASE}/namespaces/team-a/clusters/%C3%A9t%C3%A9"),
        ("DELETE", f"{BASE}/regions/%F3%A5%B3%86%C2%A2%C2%B6"),
        ("PATCH", f"{BASE}/namespaces/%C3%96%C2%B0/clusters/c1"),
    ]:
        r = requests.request(method, gateway.url + path, json={} if method == "PATCH" else None,
                             headers={**gateway.headers, "Content-Type":
                                      "application/merge-patch+json"}, timeout=10)
        assert 400 <= r.status_code < 500, f"{method} {path} -> {r.status_code} {r.text[:300]}"


def test_dotted_namespace_cannot_alias_another_namespace(gateway: Gateway) -> None:
    body = {"metadata": {"name": "c"},
            "spec": {"region": "local", "provider": "simulated", "release": "mke-1-0"}}
    r = requests.post(f"{gateway.url}{BASE}/namespaces/alias.x/clusters", json=body,
                      headers=gateway.headers, timeout=10)
    if r.status_code >= 400:
        return  # a dotted namespace is refused outright: no aliasing possible
    r = requests.get(f"{gateway.url}{BASE}/namespaces/alias/clusters/x.c",
                     headers=gateway.headers, timeout=10)
    assert r.status_code == 404, (
        f"namespace 'alias' name 'x.c' reads the object of namespace 'alias.x' name 'c': "
        f"{r.status_code} {r.text[:300]}")
