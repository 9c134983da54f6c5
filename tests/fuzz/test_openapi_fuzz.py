"""Fuzz the gateway from its own OpenAPI document (schemathesis, positive and negative data).

Properties checked on every generated request, as the operator (so RBAC refusals do not
hide validation): the gateway never answers 5xx, and a request it rejects (4xx) leaves
the store exactly as it was (no write reached the objects bucket). Half of the cases are
pointed at seeded objects (namespace ``fuzz``, name ``seed``) so updates, patches and
deletes reach real objects and not only 404s. Bounded: a few examples per operation.
"""

from __future__ import annotations

import json
import zlib

import hypothesis
import pytest
import requests
import schemathesis

from services.api.openapi import document
from shared.models import API_VERSION
from tests.fuzz.conftest import Gateway

EXAMPLES = 3
NS = "fuzz"
SEED = "seed"
BASE = f"/apis/{API_VERSION}"

SEEDS: dict[str, dict] = {
    f"{BASE}/regions": {"metadata": {"name": SEED}, "spec": {"providers": ["simulated"]}},
    f"{BASE}/namespaces/{NS}/clusters": {
        "metadata": {"name": SEED, "labels": {"team": "fuzz"}},
        "spec": {"region": "local", "provider": "simulated", "release": "mke-1-0"},
    },
    f"{BASE}/namespaces/{NS}/machinepools": {  # a scalable kind: its /scale is fuzzed too
        "metadata": {"name": SEED},
        "spec": {"cluster": SEED, "region": "local", "replicas": 1,
                 "template": {"spec": {"simulated": {"flavor": "small"}}}},
    },
    f"{BASE}/namespaces/{NS}/publickeys": {
        "metadata": {"name": SEED},
        "spec": {"publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFuzz fuzz@test"},
    },
}

config = schemathesis.Config.from_dict({
    "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True,
                   "no-shrink": True, "allow-x00": False},
    "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
})
schema = schemathesis.openapi.from_dict(document(), config=config)


def ensure_seeds(gw: Gateway) -> None:
    for path, body in SEEDS.items():
        name = body["metadata"]["name"]
        r = requests.get(f"{gw.url}{path}/{name}", headers=gw.headers, timeout=10)
        if r.status_code == 404:
            r = requests.post(f"{gw.url}{path}", json=body, headers=gw.headers, timeout=10)
            assert r.status_code == 201, f"seeding {path}: {r.status_code} {r.text}"


def aim_at_seeds(case: schemathesis.Case) -> bool:
    """Point about half of the cases at the seeded objects, deterministically."""
    params = case.path_parameters or {}
    if not params or zlib.crc32(repr(sorted(params.items())).encode()) % 2:
        return False
    if "namespace" in params:
        params["namespace"] = NS
    if "name" in params:
        params["name"] = SEED
    return True


def describe(case: schemathesis.Case, r: requests.Response) -> str:
    body = case.body if not isinstance(case.body, bytes | bytearray) else case.body[:300]
    try:
        body_text = json.dumps(body, default=str)[:600]
    except (TypeError, ValueError):
        body_text = repr(body)[:600]
    return (f"{case.method} {case.formatted_path} query={case.query} "
            f"media={case.media_type} body={body_text}\n -> {r.status_code} {r.text[:600]}")


@pytest.fixture(scope="module", autouse=True)
def seeded(gateway: Gateway) -> None:
    ensure_seeds(gateway)


@schema.parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck),
                     database=None)
def test_no_5xx_and_rejections_change_nothing(case: schemathesis.Case, gateway: Gateway
                                              ) -> None:
    if case.query:
        case.query.pop("watch", None)  # a stream; the watch tests cover it
        case.query.pop("timeoutSeconds", None)
    if aim_at_seeds(case) and case.method == "DELETE":
        ensure_seeds(gateway)  # an earlier accepted DELETE may have removed one
    before = gateway.write_seq()
    r = case.call(base_url=gateway.url, headers=gateway.headers, timeout=10)
    assert r.status_code < 500, f"server error:\n{describe(case, r)}\n{gateway.tail()}"
    if 400 <= r.status_code < 500:
        after = gateway.write_seq()
        assert after == before, (
            f"rejected request changed the store:\n{describe(case, r)}\n"
            f"writes: {gateway.writes_since(before)}"
        )
