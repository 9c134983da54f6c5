"""Helm for the deploy tests: the helm-sdkpy venv, fake clusters in a thread, one driver run.

helm-sdkpy needs Python 3.12, so it lives in its own venv (``var/helm-venv``, made by
scripts/test-deps) and runs ``helm_driver.py`` as a subprocess. Installs go to
``FakeKubeCluster`` servers served from a background event loop, so plain (sync) tests and
module-scoped fixtures can use them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.fakes.kube_cluster import FakeKubeCluster

ROOT = Path(__file__).resolve().parents[2]
HELM_PYTHON = ROOT / "var" / "helm-venv" / "bin" / "python"
DRIVER = Path(__file__).with_name("helm_driver.py")
CHARTS = ROOT / "deploy" / "charts"
UMBRELLA = CHARTS / "container-cloud"


def helm_available() -> str | None:
    """None when helm-sdkpy can run, else why not."""
    if not HELM_PYTHON.exists():
        return f"{HELM_PYTHON} missing: run scripts/test-deps (needs Python 3.12)"
    probe = subprocess.run([str(HELM_PYTHON), "-c", "import helm_sdkpy, yaml"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode:
        return f"helm-sdkpy not importable in {HELM_PYTHON}: {probe.stderr.strip()[-300:]}"
    return None


def run_helm(jobs: list[dict[str, Any]], *, timeout: float = 120) -> list[dict[str, Any]]:
    """Run the jobs in one driver process; one result per job."""
    env = {**os.environ, "HELM_DRIVER": "memory", "HELM_QPS": "500", "HELM_BURST_LIMIT": "1000",
           "HOME": str(ROOT / "var" / "helm-home")}
    proc = subprocess.run(
        [str(HELM_PYTHON), str(DRIVER)], input=json.dumps(jobs), capture_output=True,
        text=True, timeout=timeout, env=env, cwd=ROOT,
    )
    if proc.returncode:
        raise RuntimeError(f"helm driver failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


class ClusterThread:
    """Fake API servers on one event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[FakeKubeCluster] = []

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def new(self, kubeconfig: Path) -> FakeKubeCluster:
        server = FakeKubeCluster()
        self._run(server.start())
        server.kubeconfig(kubeconfig)
        self.servers.append(server)
        return server

    def close(self) -> None:
        for s in self.servers:
            self._run(s.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@contextmanager
def clusters() -> Iterator[ClusterThread]:
    ct = ClusterThread()
    try:
        yield ct
    finally:
        ct.close()


def install_crd(url: str, group: str, kind: str, plural: str) -> None:
    """Install a third party's CRD (cert-manager's, the Prometheus Operator's) into a fake
    cluster, schema-less: the chart's objects of that kind are then accepted as a real
    cluster with the operator installed would take them."""
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                           "listKind": f"{kind}List"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object",
                                         "x-kubernetes-preserve-unknown-fields": True}}}]},
    }
    req = urllib.request.Request(
        f"{url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions", method="POST",
        data=json.dumps(crd).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 201
