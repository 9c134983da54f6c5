"""kill -9 each service (and the nats-server) mid-provisioning, start it again, and check
that every cluster still reaches Ready, the provider holds exactly one node per Machine,
and every write the API acknowledged is still there.

Each test: two clusters are created and provisioning starts; the victim is SIGKILLed
while a ledger writer keeps PATCHing through the API; a third cluster is created while
the victim is down (or right after, when the victim is the API or the server); then the
victim is started again. Small clusters and a short simulated provisioning time keep a
test within ~30 s.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import Region
from tests.waiting import eventually

pytestmark = pytest.mark.slow


async def provisioning_started(region: Region) -> None:
    async def some_node() -> bool:
        return any(m.status.provider_id for m in await region.machines())

    await eventually(some_node, timeout=60, what="the provider making a first node")


@pytest.mark.parametrize("victim", ["api", "bridge", "lcm", "provider", "mirror", "fleet"])
async def test_kill9_service_mid_provisioning(region: Region, victim: str) -> None:
    clusters = ["alpha", "beta"]
    for c in clusters:
        await region.create_cluster(c)
    await provisioning_started(region)
    assert not all([await region.ready(c) for c in clusters]), "finished before the kill"
    stop = asyncio.Event()
    writer = asyncio.create_task(region.ledger_writer(stop))
    await asyncio.sleep(0.3)  # let the ledger take some writes before the kill
    region.kill9(victim)
    if victim != "api":
        await region.create_cluster("gamma")
    else:
        await asyncio.sleep(1.0)  # the API is down: writes are refused, not lost
    region.start(victim)
    if victim == "api":
        await region.wait_api()
        await region.create_cluster("gamma")
    await asyncio.sleep(0.5)
    stop.set()
    await writer
    assert region.acked.ledger, "the ledger writer got no write acknowledged"
    await region.check_invariants([*clusters, "gamma"])


async def test_restart_nats_server_mid_provisioning(region: Region) -> None:
    clusters = ["alpha", "beta"]
    for c in clusters:
        await region.create_cluster(c)
    await provisioning_started(region)
    stop = asyncio.Event()
    writer = asyncio.create_task(region.ledger_writer(stop))
    await asyncio.sleep(0.3)
    await region.restart_nats()
    await region.wait_api()

    async def gamma() -> bool:
        try:
            await region.create_cluster("gamma")
        except AssertionError:
            return False
        return True

    await eventually(gamma, timeout=30, interval=0.5, what="creating a cluster after restart")
    await asyncio.sleep(0.5)
    stop.set()
    await writer
    await region.check_invariants([*clusters, "gamma"])
