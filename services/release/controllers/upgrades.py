"""Publishes, per Cluster, the ClusterReleases it may upgrade to (``status.availableUpgrades``).

The answer comes from the compatibility matrix of the newest KaaSRelease. This reconciler
owns exactly one Cluster status field: it re-reads the Cluster on conflict and changes only
``availableUpgrades``, so the other controllers writing Cluster status are never undone.
A change to any KaaSRelease or ClusterRelease enqueues ``ALL_CLUSTERS``, which recomputes
every Cluster of this region (the release service runs per region, like the mirror).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from services.release.compat import Matrix, latest_kaas
from shared.bus import ChangeEvent
from shared.models import Cluster, ClusterRelease, KaaSRelease
from shared.runtime import Request, Result, Watch, update_status
from shared.runtime.paused import is_paused
from shared.store import NotFound, Store

log = logging.getLogger(__name__)

# A request naming no single cluster: recompute them all (a release changed).
ALL_CLUSTERS = Request("*")


def _all_clusters(_: ChangeEvent) -> Iterable[Request]:
    return [ALL_CLUSTERS]


RELEASE_WATCHES = [Watch(KaaSRelease, _all_clusters), Watch(ClusterRelease, _all_clusters)]


class AvailableUpgradesReconciler:
    def __init__(self, store: Store, *, region: str | None = None) -> None:
        self.store = store
        self.region = region  # this release service's region: only its Clusters

    async def _matrix(self) -> Matrix | None:
        kaas = latest_kaas(await self.store.list_all(KaaSRelease))
        if kaas is None:
            return None
        return Matrix(kaas, await self.store.list_all(ClusterRelease))

    async def reconcile(self, req: Request) -> Result:
        matrix = await self._matrix()
        if req == ALL_CLUSTERS:
            for cluster in await self.store.list_all(Cluster):
                try:
                    await self._publish(cluster, matrix)
                except NotFound:
                    continue
            return Result.done()
        cluster = await self.store.get(Cluster, req.name, req.namespace)
        await self._publish(cluster, matrix)
        return Result.done()

    async def _publish(self, cluster: Cluster, matrix: Matrix | None) -> None:
        if cluster.deleting or is_paused(cluster):  # the "all" request reads each itself
            return
        if self.region is not None and cluster.spec.region != self.region:
            return

        def mutate(c: Cluster) -> None:
            current = c.status.release or c.spec.release
            c.status.available_upgrades = matrix.available_upgrades(current) if matrix else []

        await update_status(self.store, cluster, mutate)
