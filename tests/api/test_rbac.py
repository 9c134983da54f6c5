"""The RBAC matrix: each role x verb x scope, through real HTTP.

The expected table is written out by hand (not derived from the implementation).
"""

from __future__ import annotations

import pytest

from tests.api.conftest import BASE, Gateway, cluster, ns_path, open_watch, os_credential, region

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
READ = {"get", "list", "watch"}
ALL = set(VERBS)
NONE: set[str] = set()

# scope -> user -> allowed verbs
MATRIX: dict[str, dict[str, set[str]]] = {
    "team-a/clusters": {"ops": ALL, "ada": ALL, "wally": ALL, "rita": READ, "nobody": NONE},
    "team-a/credentials": {"ops": ALL, "ada": ALL, "wally": READ, "rita": READ, "nobody": NONE},
    "team-b/clusters": {"ops": ALL, "ada": NONE, "wally": READ, "rita": NONE, "nobody": NONE},
    "cluster/regions": {"ops": ALL, "ada": READ, "wally": READ, "rita": READ, "nobody": READ},
}

SCOPES = {
    "team-a/clusters": ("clusters", "team-a", cluster),
    "team-a/credentials": ("openstackcredentials", "team-a", os_credential),
    "team-b/clusters": ("clusters", "team-b", cluster),
    "cluster/regions": ("regions", None, region),
}


def _paths(plural: str, ns: str | None, name: str = "") -> str:
    if ns is None:
        return f"{BASE}/{plural}" + (f"/{name}" if name else "")
    return ns_path(plural, ns, name)


async def _attempt(gw: Gateway, verb: str, user: str, scope: str) -> int:
    plural, ns, make = SCOPES[scope]
    seeded = "seed"
    if verb == "get":
        return (await gw.call("GET", _paths(plural, ns, seeded), user=user))[0]
    if verb == "list":
        return (await gw.call("GET", _paths(plural, ns), user=user))[0]
    if verb == "watch":
        w = await open_watch(gw, _paths(plural, ns), user=user, timeoutSeconds="0.1")
        w.close()
        return w.status
    if verb == "create":
        body = make("fresh", ns) if ns else make("fresh")
        return (await gw.call("POST", _paths(plural, ns), json=body, user=user))[0]
    _, current = await gw.call("GET", _paths(plural, ns, seeded))
    if verb == "update":
        current["metadata"]["labels"] = {"touched": "yes"}
        return (await gw.call("PUT", _paths(plural, ns, seeded), json=current, user=user))[0]
    if verb == "patch":
        return (
            await gw.call("PATCH", _paths(plural, ns, seeded), user=user,
                          json={"metadata": {"labels": {"patched": "yes"}}},
                          content_type="application/merge-patch+json")
        )[0]
    return (await gw.call("DELETE", _paths(plural, ns, seeded), user=user))[0]


@pytest.mark.parametrize("scope", sorted(MATRIX))
@pytest.mark.parametrize("user", ["ops", "ada", "wally", "rita", "nobody"])
async def test_rbac_matrix(gateway: Gateway, user: str, scope: str) -> None:
    plural, ns, make = SCOPES[scope]
    seed = make("seed", ns) if ns else make("seed")
    code, body = await gateway.call("POST", _paths(plural, ns), json=seed)
    assert code == 201, body
    allowed = MATRIX[scope][user]
    outcomes = {}
    for verb in VERBS:
        outcomes[verb] = await _attempt(gateway, verb, user, scope)
    expected = {
        v: ({"create": 201, "delete": 200}.get(v, 200) if v in allowed else 403) for v in VERBS
    }
    assert outcomes == expected


async def test_forbidden_write_leaves_no_trace_and_is_audited(gateway: Gateway) -> None:
    code, _ = await gateway.call("POST", ns_path("clusters"), json=cluster("x"), user="rita")
    assert code == 403
    assert (await gateway.call("GET", ns_path("clusters", name="x")))[0] == 404
    entry = gateway.audit_lines()[-1]
    assert entry["user"] == "rita" and entry["verb"] == "create" and entry["code"] == 403
    assert entry["name"] == "x" and entry["namespace"] == "team-a"


async def test_all_namespace_list_needs_some_binding(gateway: Gateway) -> None:
    code, body = await gateway.call("GET", f"{BASE}/clusters", user="nobody")
    assert code == 403
    assert (await gateway.call("GET", f"{BASE}/clusters", user="rita"))[0] == 200
