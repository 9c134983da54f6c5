"""Fixtures for the attach tests: a fake Kubernetes API with nodes, and a running controller.

The attached "cluster" is ``FakeKubeApiServer`` on 127.0.0.1 (no kube-apiserver can be
installed here), driven by the real kubernetes-asyncio client inside the reconciler. The
controller runs on the test harness: a KV store, the bus and the bridge on the real
nats-server.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from services.attach.reconciler import AttachedClusterReconciler
from shared.models import AttachedCluster, AttachedClusterSpec, ObjectMeta
from shared.runtime import Controller
from shared.store import Store
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.harness import Harness, system

REGION = "region-one"
NAMESPACE = "default"
# Distinctive, so any leak into status, events or logs is found by a substring search.
TOKEN = "tok-5ecret-0c6f1e2d9a8b7c6d5e4f3a2b1c0d9e8f"
NODES = ["mke-manager-0", "mke-worker-0", "mke-worker-1"]


def leaks(text: str | bytes, secret: str, window: int = 10) -> bool:
    """Whether ``text`` holds the secret or any ``window``-long piece of it."""
    raw = text.decode(errors="replace") if isinstance(text, bytes) else text
    return any(secret[i:i + window] in raw for i in range(len(secret) - window + 1))


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[FakeKubeApiServer]:
    server = FakeKubeApiServer(token=TOKEN, nodes=NODES, git_version="v1.27.7")
    await server.start()
    yield server
    await server.stop()


def kubeconfig_text(server: FakeKubeApiServer, tmp_path: Path, name: str = "kc.yaml") -> str:
    return server.kubeconfig(tmp_path / name).read_text()


def attached(
    name: str, endpoint: str, kubeconfig: str, *, region: str = REGION, poll: int = 1
) -> AttachedCluster:
    return AttachedCluster(
        metadata=ObjectMeta(name=name, namespace=NAMESPACE),
        spec=AttachedClusterSpec(
            region=region, endpoint=endpoint, kubeconfig=kubeconfig, poll_interval_seconds=poll
        ),
    )


async def fetch(store: Store, name: str) -> AttachedCluster:
    return await store.get(AttachedCluster, name, NAMESPACE)


@dataclass
class Attach:
    h: Harness
    reconciler: AttachedClusterReconciler
    controller: Controller

    @property
    def store(self) -> Store:
        return self.h.store


@contextlib.asynccontextmanager
async def running(nc: NATS, prefix: str, **kwargs: float) -> AsyncIterator[Attach]:
    async with system(nc, prefix) as h:
        opts = {"probe_timeout": 2.0, "backoff_initial": 0.2, "backoff_max": 1.0} | kwargs
        reconciler = AttachedClusterReconciler(h.store, region=REGION, **opts)
        ctl = Controller(name="attach-attachedcluster", kind=AttachedCluster,
                         reconciler=reconciler, store=h.store, bus=h.bus, region=REGION,
                         resync_period=None)
        await ctl.start()
        try:
            yield Attach(h, reconciler, ctl)
        finally:
            await ctl.stop()


@pytest.fixture
async def attach(nc: NATS, prefix: str) -> AsyncIterator[Attach]:
    async with running(nc, prefix) as a:
        yield a


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog
