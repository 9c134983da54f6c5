"""The release service's available-upgrades controller serves only its own region.

Run as a regional controller (``region="r1"``), it computes ``availableUpgrades`` for r1's
Clusters only, yet still hears the global release objects' events: a KaaSRelease change
(published on ``<prefix>.global.kaasrelease.*``) recomputes r1's Clusters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NATS

from services.release.controllers.upgrades import RELEASE_WATCHES, AvailableUpgradesReconciler
from services.release.defaults import ensure_default_releases
from shared.models import Cluster, KaaSRelease, convert
from shared.runtime import Controller
from tests.harness import Harness, system
from tests.waiting import eventually

NS = "default"


@pytest.fixture
async def h(nc: NATS, prefix: str) -> AsyncIterator[Harness]:
    async with system(nc, prefix) as harness:
        yield harness


def cluster(name: str, region: str) -> Cluster:
    return convert(Cluster, {"metadata": {"name": name, "namespace": NS},
                             "spec": {"region": region, "provider": "simulated",
                                      "release": "mke-3-7-0"}})


async def test_upgrades_of_own_region_only_and_global_release_events(h: Harness) -> None:
    await ensure_default_releases(h.store)
    ctl = Controller(name="release-upgrades", kind=Cluster, store=h.store, bus=h.bus,
                     region="r1", reconciler=AvailableUpgradesReconciler(h.store, region="r1"),
                     watches=list(RELEASE_WATCHES), resync_period=None)
    await ctl.start()
    try:
        await h.store.create(cluster("other", "r2"))
        await h.store.create(cluster("mine", "r1"))

        async def upgrades(name: str) -> list[str]:
            return (await h.store.get(Cluster, name, NS)).status.available_upgrades

        assert await eventually(lambda: upgrades("mine"), timeout=10) == ["mke-3-7-1"]
        kaas = (await h.store.list_all(KaaSRelease))[0]
        assert kaas.region() == "global"
        entry = next(s for s in kaas.spec.supported_cluster_releases if s.name == "mke-3-7-0")
        entry.available_upgrades = ["mke-3-7-1", "mke-3-8-0"]
        await h.store.update(kaas)

        async def widened() -> bool:
            return await upgrades("mine") == ["mke-3-7-1", "mke-3-8-0"]

        await eventually(widened, timeout=10, what="r1's Cluster recomputed on a global event")
        assert await upgrades("other") == [], "another region's Cluster is left to its region"
    finally:
        await ctl.stop()
