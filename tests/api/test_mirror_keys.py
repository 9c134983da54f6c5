"""An ArtifactMirror's ``signedBy`` (the vendor keys its Debian upstream must be signed
with) is checked when written: anything but armored OpenPGP public keys on a debian
upstream is a 422 with the reason, and nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest

from shared.models import API_VERSION, ArtifactMirror
from shared.store import NotFound
from tests.api.conftest import Gateway, ns_path
from tests.fakes.openpgp import Signer

MIRRORS = "artifactmirrors"


def mirror(name: str, **upstream: str) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "ArtifactMirror",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"region": "local", "release": "mke-3-7-0",
                     "upstreams": [{"url": "https://cdn.example.test/debian", **upstream}]}}


async def test_signed_by_takes_armored_keys_on_debian_upstreams_only(gateway: Gateway) -> None:
    vendor = Signer()
    try:
        keys = vendor.public_key
    finally:
        vendor.close()
    for name, upstream, why in (
        ("not-a-key", {"type": "debian", "signedBy": "ssh-ed25519 AAAAC3Nz"},
         "signedBy must hold ASCII-armored OpenPGP public keys"),
        ("not-debian", {"type": "helm", "signedBy": keys},
         "signedBy applies to debian upstreams only, not helm"),
    ):
        code, body = await gateway.call("POST", ns_path(MIRRORS), json=mirror(name, **upstream),
                                        user="ops")
        assert code == 422, body
        assert why in body["message"], body
        with pytest.raises(NotFound):  # nothing of a rejected mirror is stored
            await gateway.store.get(ArtifactMirror, name, "team-a")

    code, created = await gateway.call("POST", ns_path(MIRRORS),
                                       json=mirror("signed", type="debian", signedBy=keys),
                                       user="ops")
    assert code == 201, created
    assert created["spec"]["upstreams"][0]["signedBy"] == keys
    stored = await gateway.store.get(ArtifactMirror, "signed", "team-a")
    assert stored.spec.upstreams[0].signed_by == keys
