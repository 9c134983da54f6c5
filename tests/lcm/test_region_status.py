"""Region status follows the region's services: a service without a live leader (no lease
holder) makes the Region Degraded and is named; when it is back the Region is Ready, with
no event needed (the controller re-checks every lease period)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from nats.aio.client import Client as NATS

from services.lcm.region import DOWN_RECHECK, SERVICES_READY, RegionReconciler
from services.lcm.service import region_controller
from shared.models import ObjectMeta, Region, RegionSpec
from shared.runtime import Request
from shared.runtime import conditions as cond
from shared.runtime.leader import LeaderElector
from tests.harness import Harness, system
from tests.waiting import eventually

REGION = "east"


@pytest.fixture
async def h(nc: NATS, prefix: str) -> AsyncIterator[Harness]:
    async with system(nc, prefix) as harness:
        yield harness


def lease(h: Harness, service: str) -> LeaderElector:
    return LeaderElector(h.nc, lease=f"{service}-{REGION}", bucket=h.settings.leases_bucket,
                         lease_seconds=h.settings.lease_seconds)


async def test_region_status_names_the_services_that_are_down(h: Harness) -> None:
    await h.store.create(Region(metadata=ObjectMeta(name=REGION),
                                spec=RegionSpec(providers=["simulated"])))
    rec = RegionReconciler(h.store, h.nc, leases_bucket=h.settings.leases_bucket, region=REGION)
    lcm, release, provider = lease(h, "lcm"), lease(h, "release"), lease(h, "provider-simulated")
    assert await lcm.try_acquire() and await release.try_acquire()

    degraded = await rec.reconcile(Request(REGION, None))
    region = await h.store.get(Region, REGION)
    c = cond.get(region.status, SERVICES_READY)
    assert region.status.phase == "Degraded" and c is not None and c.status == "False"
    assert "provider-simulated" in c.message and "lcm" not in c.message
    # A service that is starting takes its lease within seconds: looked at again soon.
    assert degraded is not None and degraded.requeue_after == DOWN_RECHECK < rec.interval

    assert await provider.try_acquire()
    ready = await rec.reconcile(Request(REGION, None))
    region = await h.store.get(Region, REGION)
    assert region.status.phase == "Ready" and cond.is_true(region.status, cond.READY)
    assert ready is not None and ready.requeue_after == rec.interval

    # Another region's reconciler leaves this Region alone.
    other = RegionReconciler(h.store, h.nc, leases_bucket=h.settings.leases_bucket,
                             region="west")
    assert await other.reconcile(Request(REGION, None)) is None


async def test_region_goes_degraded_without_an_event(h: Harness) -> None:
    await h.store.create(Region(metadata=ObjectMeta(name=REGION), spec=RegionSpec()))
    lcm, release = lease(h, "lcm"), lease(h, "release")
    assert await lcm.try_acquire() and await release.try_acquire()
    settings = msgspec.structs.replace(h.settings, region=REGION, lease_seconds=0.5)
    ctrl = region_controller(h.store, h.bus, h.nc, settings)
    await ctrl.start()
    try:
        async def phase(want: str) -> bool:
            return (await h.store.get(Region, REGION)).status.phase == want

        await eventually(lambda: phase("Ready"), timeout=20, what="region Ready")
        await release.release()  # the release service stops; nothing is written anywhere
        await eventually(lambda: phase("Degraded"), timeout=20, what="region Degraded")
        c = cond.get((await h.store.get(Region, REGION)).status, SERVICES_READY)
        assert c is not None and c.message == "no running release in this region"
    finally:
        await ctrl.stop()
