"""An MKE-style client bundle: HTTPS, the cluster CA, a client certificate (no token).

The fake API server requires a client certificate of its CA, so a probe only succeeds if
the kubeconfig's inline certificate data reaches the real client's TLS set-up.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from services.attach.kubeconfig import parse
from services.attach.probe import TLS_ERROR, UNREACHABLE, ProbeError, probe
from tests.attach.conftest import NODES, leaks
from tests.attach.pki import CA, Pair, server_context
from tests.fakes.kube_apiserver import FakeKubeApiServer


@pytest.fixture
def ca() -> CA:
    return CA("mke-cluster-ca")


@pytest.fixture
async def tls_kube(ca: CA, tmp_path: Path) -> AsyncIterator[FakeKubeApiServer]:
    server = FakeKubeApiServer(nodes=NODES, git_version="v1.27.7")
    await server.start(ssl_context=server_context(ca, ca.issue("kube-apiserver", server=True),
                                                  tmp_path))
    yield server
    await server.stop()


def bundle(server: str, ca_pem: bytes, client: Pair) -> str:
    cert, key = client.b64()
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "ucp_mke_admin",
        "clusters": [{"name": "ucp_mke", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": "ucp_admin", "user": {
            "client-certificate-data": cert, "client-key-data": key}}],
        "contexts": [{"name": "ucp_mke_admin",
                      "context": {"cluster": "ucp_mke", "user": "ucp_admin"}}],
    })


async def test_client_certificate_bundle(ca: CA, tls_kube: FakeKubeApiServer) -> None:
    assert tls_kube.url.startswith("https://")
    access = parse(bundle(tls_kube.url, ca.pem, ca.issue("admin", server=False)), tls_kube.url)
    seen = await probe(access, timeout=5)
    assert seen.kubernetes_version == "v1.27.7"
    assert [n.name for n in seen.nodes] == NODES


async def test_an_untrusted_server_certificate_is_a_tls_error(
    ca: CA, tls_kube: FakeKubeApiServer
) -> None:
    client = ca.issue("admin", server=False)
    access = parse(bundle(tls_kube.url, CA("someone-else").pem, client), tls_kube.url)
    with pytest.raises(ProbeError) as info:
        await probe(access, timeout=5)
    assert info.value.reason == TLS_ERROR
    assert "certificate" in info.value.message
    assert not leaks(info.value.message, base64.b64encode(client.key_pem).decode())
    assert tls_kube.requests == []


async def test_a_client_certificate_of_another_ca_is_refused(
    ca: CA, tls_kube: FakeKubeApiServer
) -> None:
    stranger = CA("someone-else").issue("admin", server=False)
    access = parse(bundle(tls_kube.url, ca.pem, stranger), tls_kube.url)
    with pytest.raises(ProbeError) as info:
        await probe(access, timeout=5)
    assert info.value.reason == UNREACHABLE
    assert "client certificate" in info.value.message
    assert tls_kube.requests == []
