"""Store backends under test: one fixture, every backend, one contract suite.

- ``kv``: the embedded backend on the real nats-server (a bucket per test);
- ``kube-fake``: the Kubernetes backend against ``tests.fakes.kube_apiserver``, a fresh
  server per test, reached through a kubeconfig with a bearer token;
- ``kube-real``: the Kubernetes backend against the cluster in ``$KUBECONFIG``, with the
  generated CRDs applied and a namespace per test (skipped without ``KUBECONFIG``).

Each backend comes as a ``Backend``: the store plus the few backend-specific hooks the
contract needs (writing a raw payload that bypasses our models).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest
from kubernetes_asyncio import client, config

from shared.models import ALL_KINDS, Resource
from shared.natsserver import NatsServer
from shared.store import Store
from shared.store.kube import KubeStore
from shared.store.kv import KVStore
from tests.fakes.kube_apiserver import FakeKubeApiServer

# kv-on-read: the embedded store with caches that catch up when read (the bridge's GC).
BACKENDS = ["kv", "kv-on-read", "kube-fake", "kube-real"]


@dataclass
class Backend:
    name: str
    store: Store
    namespace: str
    prefix: str
    # Writes a payload as-is (None where the backend validates it itself, like a real
    # API server with our CRD schemas).
    raw_create: Any = None
    # Whether a watch from an old version replays every change (Kubernetes; the KV bucket
    # too while no object changed more than ``kv.HISTORY`` times since) rather than each
    # changed object's latest state.
    exact_history: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def cluster_name(self, name: str) -> str:
        """A unique name for cluster-scoped objects (a real cluster is shared)."""
        return f"{self.prefix}-{name}"


async def _kv_backend(nats_server: NatsServer, prefix: str, *, follow: bool = True,
                      ) -> AsyncIterator[Backend]:
    nc = await nats.connect(nats_server.url)
    store = KVStore(nc, bucket=f"objects-{prefix}", follow=follow)
    await store.start()

    async def raw_create(cls: type[Resource], data: dict[str, Any]) -> None:
        import json

        meta = data["metadata"]
        key = f"{cls.KIND}.{meta.get('namespace') or '_'}.{meta['name']}"
        await store.kv.put(key, json.dumps(data).encode())

    try:
        yield Backend("kv" if follow else "kv-on-read", store, namespace="default",
                      prefix=prefix, raw_create=raw_create)
    finally:
        await store.close()
        await nc.jetstream().delete_key_value(f"objects-{prefix}")
        await nc.close()


async def _fake_backend(tmp_path: Path, prefix: str) -> AsyncIterator[Backend]:
    server = FakeKubeApiServer(token="contract-token")
    server.register_kinds(ALL_KINDS)
    await server.start()
    store = KubeStore(kubeconfig=server.kubeconfig(tmp_path / "kubeconfig"))
    await store.start()

    async def raw_create(cls: type[Resource], data: dict[str, Any]) -> None:
        api = store.api
        ns = data["metadata"].get("namespace")
        if ns:
            await api.create_namespaced_custom_object(
                store.group, store.version, ns, cls.PLURAL, data)
        else:
            await api.create_cluster_custom_object(store.group, store.version, cls.PLURAL, data)

    try:
        yield Backend("kube-fake", store, namespace="team-a", prefix=prefix,
                      raw_create=raw_create, extra={"server": server})
    finally:
        await store.close()
        await server.stop()


_crds_applied: set[str] = set()


async def _apply_crds(api_client: client.ApiClient) -> None:
    from shared.models.crd import crd_manifests

    ext = client.ApiextensionsV1Api(api_client)
    names = []
    for manifest in crd_manifests():
        name = manifest["metadata"]["name"]
        names.append(name)
        try:
            current = await ext.read_custom_resource_definition(name)
            manifest["metadata"]["resourceVersion"] = current.metadata.resource_version
            await ext.replace_custom_resource_definition(name, manifest)
        except client.ApiException as e:
            if e.status != 404:
                raise
            await ext.create_custom_resource_definition(manifest)
    for name in names:
        for _ in range(100):
            crd = await ext.read_custom_resource_definition(name)
            conds = {c.type: c.status for c in (crd.status.conditions or [])}
            if conds.get("Established") == "True":
                break
            await asyncio.sleep(0.1)  # polling the real cluster's condition
        else:
            raise RuntimeError(f"CRD {name} never became Established")


async def _real_backend(prefix: str) -> AsyncIterator[Backend]:
    kubeconfig = os.environ.get("KUBECONFIG", "")
    if not kubeconfig:
        pytest.skip("kube-real: set KUBECONFIG to a cluster where CRDs may be applied")
    cfg = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig.split(os.pathsep)[0],
                                  client_configuration=cfg)
    api_client = client.ApiClient(configuration=cfg)
    if kubeconfig not in _crds_applied:
        await _apply_crds(api_client)
        _crds_applied.add(kubeconfig)
    core = client.CoreV1Api(api_client)
    namespace = f"cc-{prefix}"
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    store = KubeStore(api_client)
    await store.start()
    try:
        yield Backend("kube-real", store, namespace=namespace, prefix=prefix)
    finally:
        await _drop_cluster_scoped(store, prefix)
        await store.close()
        await core.delete_namespace(namespace)
        await api_client.close()


async def _drop_cluster_scoped(store: KubeStore, prefix: str) -> None:
    """Remove this test's cluster-scoped objects from a shared cluster."""
    for cls in ALL_KINDS:
        if cls.NAMESPACED:
            continue
        for obj in await store.list_all(cls):
            if not obj.metadata.name.startswith(prefix):
                continue
            if obj.metadata.finalizers:
                obj.metadata.finalizers = []
                obj.metadata.resource_version = None
                await store.update(obj)
            try:
                await store.delete(cls, obj.metadata.name)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass


@pytest.fixture(params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, nats_server: NatsServer, prefix: str, tmp_path: Path
) -> AsyncIterator[Backend]:
    if request.param in ("kv", "kv-on-read"):
        gen = _kv_backend(nats_server, prefix, follow=request.param == "kv")
    elif request.param == "kube-fake":
        gen = _fake_backend(tmp_path, prefix)
    else:
        gen = _real_backend(prefix)
    b = await gen.__anext__()
    try:
        yield b
    finally:
        await gen.aclose()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.store


@pytest.fixture
async def fake_kube(tmp_path: Path) -> AsyncIterator[FakeKubeApiServer]:
    """A bare fake API server (for Kubernetes-backend-specific tests)."""
    server = FakeKubeApiServer()
    server.register_kinds(ALL_KINDS)
    await server.start()
    yield server
    await server.stop()
