"""One probe through the real kubernetes-asyncio client against the fake API server."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.attach.kubeconfig import parse
from services.attach.probe import UNAUTHORIZED, UNREACHABLE, ProbeError, probe
from tests.attach.conftest import NODES, TOKEN, kubeconfig_text
from tests.fakes.kube_apiserver import FakeKubeApiServer


async def test_version_and_nodes_are_read(kube: FakeKubeApiServer, tmp_path: Path) -> None:
    kube.set_nodes([
        *NODES[:2],
        {"metadata": {"name": "mke-worker-1", "labels": {
            "node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/ingress": "true"}},
         "status": {"conditions": [{"type": "Ready", "status": "False"}],
                    "nodeInfo": {"kubeletVersion": "v1.27.6"}}},
    ])
    access = parse(kubeconfig_text(kube, tmp_path), kube.url)
    seen = await probe(access, timeout=2)
    assert seen.kubernetes_version == "v1.27.7"
    assert [n.name for n in seen.nodes] == NODES
    assert [n.ready for n in seen.nodes] == [True, True, False]
    assert seen.nodes[2].roles == ["ingress", "worker"]
    assert seen.nodes[2].kubelet_version == "v1.27.6"
    assert seen.nodes[0].kubelet_version == "v1.27.7"
    assert seen.ready_nodes == 2
    assert {m for m, _ in kube.requests} == {"GET"}
    paths = [p for _, p in kube.requests]
    assert paths == ["/version/", "/api/v1/nodes"]


async def test_wrong_token_is_unauthorized(kube: FakeKubeApiServer, tmp_path: Path) -> None:
    good = kubeconfig_text(kube, tmp_path)
    access = parse(good.replace(TOKEN, "not-the-token"), kube.url)
    with pytest.raises(ProbeError) as info:
        await probe(access, timeout=2)
    assert info.value.reason == UNAUTHORIZED
    assert "401" in info.value.message and kube.url.replace("http://", "") in info.value.message


async def test_stopped_server_is_unreachable(kube: FakeKubeApiServer, tmp_path: Path) -> None:
    access = parse(kubeconfig_text(kube, tmp_path), kube.url)
    await kube.stop()
    with pytest.raises(ProbeError) as info:
        await probe(access, timeout=2)
    assert info.value.reason == UNREACHABLE
    assert "unreachable" in info.value.message
    assert TOKEN not in info.value.message
