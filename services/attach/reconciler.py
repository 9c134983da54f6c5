"""AttachedCluster reconciler: verify, observe and poll an existing (MKE) cluster.

Attaching is read-only. ``reconcile`` adds the detach finalizer, then either forgets a
deleted cluster (``reconcile_delete``: drop the finalizer and the poll schedule, send
nothing to the cluster) or probes it (``reconcile_normal``):

1. validate the kubeconfig against ``spec.endpoint`` (``Connected=False`` with
   ``InvalidKubeconfig``/``InvalidEndpoint``/``EndpointMismatch``, not retried until the
   spec changes);
2. read ``/version`` and the node list with the real Kubernetes client;
3. write version, nodes and ``Connected``/``Healthy``/``Ready`` in one status write.

A healthy cluster is probed again every ``spec.pollIntervalSeconds``; an unreachable one
is retried with exponential backoff (capped), so it recovers promptly once reachable.
The poll schedule lives in memory: our own status writes come back as bus events, and
without it every write would trigger another probe.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from services.attach import conditions as ac
from services.attach.kubeconfig import AccessError, ClusterAccess, parse
from services.attach.probe import DEFAULT_TIMEOUT, Observation, ProbeError, probe
from shared.models import AttachedCluster, AttachedClusterStatus, now
from shared.runtime import Request, Result, ensure_finalizer, remove_finalizer, status_writer
from shared.runtime import conditions as cond
from shared.store import NotFound, Store

log = logging.getLogger(__name__)

FINALIZER = "attach.kaas.containercloud.dev/detach"


def _ready(obj: AttachedCluster) -> tuple[str, str]:
    c = cond.get(obj.status, cond.READY)
    return (c.status, c.reason) if c else ("Unknown", "")


@dataclass
class _Schedule:
    uid: str
    generation: int
    due: float
    failures: int = 0


class AttachedClusterReconciler:
    def __init__(
        self,
        store: Store,
        *,
        region: str | None = None,
        probe_timeout: float = DEFAULT_TIMEOUT,
        backoff_initial: float = 2.0,
        backoff_max: float = 300.0,
    ) -> None:
        self.store = store
        self.region = region
        self.probe_timeout = probe_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._schedule: dict[Request, _Schedule] = {}

    async def reconcile(self, req: Request) -> Result:
        try:
            obj = await self.store.get(AttachedCluster, req.name, req.namespace)
        except NotFound:
            self._schedule.pop(req, None)
            raise
        # Detach only forgets, so any region's service may let a deleted object go.
        if self.region is not None and obj.region() != self.region and not obj.deleting:
            self._schedule.pop(req, None)
            return Result.done()
        if obj.deleting:
            return await self.reconcile_delete(req, obj)
        obj = await ensure_finalizer(self.store, obj, FINALIZER)
        waiting = self._not_due(req, obj)
        if waiting is not None:
            return Result(requeue_after=waiting)
        before = _ready(obj)
        async with status_writer(self.store, obj) as obj:
            result = await self.reconcile_normal(req, obj)
        after = _ready(obj)
        if after != before:
            log.info("attached cluster %s: Ready=%s (%s)", req, after[0], after[1])
        return result

    async def reconcile_delete(self, req: Request, obj: AttachedCluster) -> Result:
        """Detach: forget the cluster. Nothing is sent to it; it keeps running as it was."""
        self._schedule.pop(req, None)
        if FINALIZER in obj.metadata.finalizers:
            await remove_finalizer(self.store, obj, FINALIZER)
            log.info("attached cluster %s detached", req)
        return Result.done()

    async def reconcile_normal(self, req: Request, obj: AttachedCluster) -> Result:
        st = obj.status
        st.observed_generation = obj.metadata.generation
        try:
            access = parse(obj.spec.kubeconfig, obj.spec.endpoint)
        except AccessError as e:
            ac.refused(st, e.reason, e.message)
            self._schedule.pop(req, None)
            log.info("attached cluster %s: %s: %s", req, e.reason, e.message)
            return Result.done()  # the spec must change; that event brings us back
        return await self._probe(req, obj, access)

    async def _probe(self, req: Request, obj: AttachedCluster, access: ClusterAccess) -> Result:
        st = obj.status
        st.last_probe = now()
        try:
            seen = await probe(access, timeout=self.probe_timeout)
        except AccessError as e:
            ac.refused(st, e.reason, e.message)
            self._schedule.pop(req, None)
            return Result.done()
        except ProbeError as e:
            delay = self._failed(req, obj)
            ac.failed(st, e.reason, e.message)
            log.info("attached cluster %s: %s: %s (retry in %.1fs)", req, e.reason, e.message,
                     delay)
            return Result(requeue_after=delay)
        self._observed(st, seen)
        delay = float(obj.spec.poll_interval_seconds)
        self._schedule[req] = _Schedule(obj.metadata.uid or "", obj.metadata.generation,
                                        time.monotonic() + delay)
        return Result(requeue_after=delay)

    @staticmethod
    def _observed(st: AttachedClusterStatus, seen: Observation) -> None:
        st.kubernetes_version = seen.kubernetes_version
        st.nodes = [n.name for n in seen.nodes]
        st.node_details = list(seen.nodes)
        st.ready_nodes = seen.ready_nodes
        ac.observed(st, seen)

    def _failed(self, req: Request, obj: AttachedCluster) -> float:
        prev = self._schedule.get(req)
        same = prev is not None and prev.uid == (obj.metadata.uid or "")
        failures = (prev.failures if same and prev else 0) + 1
        delay = min(self.backoff_initial * 2 ** (failures - 1), self.backoff_max)
        self._schedule[req] = _Schedule(obj.metadata.uid or "", obj.metadata.generation,
                                        time.monotonic() + delay, failures)
        return delay

    def _not_due(self, req: Request, obj: AttachedCluster) -> float | None:
        """Seconds until the next probe of an unchanged object, or None if one is due."""
        s = self._schedule.get(req)
        md = obj.metadata
        if s is None or s.uid != (md.uid or "") or s.generation != md.generation:
            return None
        left = s.due - time.monotonic()
        return left if left > 0 else None
