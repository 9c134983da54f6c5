"""Node leases on a real NATS server: what a region's view holds, from its start on."""

from __future__ import annotations

import contextlib
from pathlib import Path

import nats
from nats.aio.client import Client as NATS

from services.lcm.clock import age
from services.lcm.lcmmachine import HEARTBEAT, LCMMachineReconciler
from services.lcm.leases import LeaseView, NodeLeases, key_of
from shared.models import LCMMachine, LCMMachineSpec, ObjectMeta
from shared.natsserver import NatsServer
from shared.runtime import Request
from shared.runtime import conditions as cond
from tests.harness import system
from tests.waiting import eventually


def machine(name: str, region: str, namespace: str = "team-a") -> LCMMachine:
    return LCMMachine(
        metadata=ObjectMeta(name=name, namespace=namespace),
        spec=LCMMachineSpec(cluster="c", machine=name, region=region, release="r"),
    )


async def test_a_view_holds_its_regions_leases_from_start_on(nc: NATS, prefix: str) -> None:
    leases = NodeLeases(nc, f"{prefix}-node-leases", ttl=60)
    east = [machine("m-0", "east"), machine("m.1", "east", "team-b")]
    west = machine("m-0", "west")
    for lm in [*east, west]:
        await leases.renew(lm)

    view, everywhere = LeaseView(leases, "east"), LeaseView(leases, None)
    await view.start()
    await everywhere.start()
    try:
        # Loaded before start() returned: no node is called missing for a cold cache.
        assert len(view) == 2 and all((age(view.renewed(lm)) or 99) < 10 for lm in east)
        assert view.renewed(west) == ""  # another region's lease, same namespace and name
        assert len(everywhere) == 3 and everywhere.renewed(west)

        late = machine("m-2", "east")
        await leases.renew(late)
        await eventually(lambda: view.renewed(late), what="a renewal after start")
        first = view.renewed(east[0])
        await leases.renew(east[0])
        await eventually(lambda: view.renewed(east[0]) != first, what="a newer renewal")

        assert key_of(east[1]) == "east.team-b.m.1"
        await leases.drop(key_of(east[1]))
        await eventually(lambda: view.renewed(east[1]) == "", what="a dropped lease gone")
        assert len(view) == 2
    finally:
        await view.stop()
        await everywhere.stop()


async def test_a_machine_made_again_under_the_same_name_has_no_lease_yet(
    nc: NATS, prefix: str
) -> None:
    leases = NodeLeases(nc, f"{prefix}-node-leases", ttl=60)
    before = machine("m-0", "east")
    before.metadata.uid = "uid-before"
    await leases.renew(before)  # the lease outlives its machine: nobody dropped it
    again = machine("m-0", "east")
    again.metadata.uid = "uid-again"
    view = LeaseView(leases, "east")
    await view.start()
    try:
        assert view.renewed(before) and (age(view.renewed(before)) or 99) < 10
        assert view.renewed(again) == "" and await view.latest(again) == ""
        await leases.renew(again)  # its own agent's first sign of life
        await eventually(lambda: view.renewed(again), what="the new machine's own lease")
        assert await view.latest(again) == view.renewed(again)
        assert view.renewed(before) == ""
    finally:
        await view.stop()


async def test_a_view_of_an_empty_bucket_starts(nc: NATS, prefix: str) -> None:
    view = LeaseView(NodeLeases(nc, f"{prefix}-node-leases", ttl=60), "east")
    await view.start()
    try:
        assert len(view) == 0
    finally:
        await view.stop()


async def test_a_view_follows_renewals_across_a_nats_server_restart(tmp_path: Path) -> None:
    """The liveness check must not go blind after a restart: every node would then be
    called missing one timeout later."""
    server = NatsServer(tmp_path / "nats")
    await server.astart()
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    leases = NodeLeases(nc, "restart-node-leases", ttl=60)
    lm = machine("m-0", "east")
    view = LeaseView(leases, "east")
    try:
        await leases.renew(lm)
        await view.start()
        before = view.renewed(lm)
        assert before

        await server.astop(kill=True)
        await server.astart()

        async def renewed_after_restart() -> bool:
            with contextlib.suppress(Exception):  # until the client has reconnected
                await leases.renew(lm)
            return view.renewed(lm) != before

        await eventually(renewed_after_restart, timeout=30, interval=0.5,
                         what="a renewal after the restart in the view")
    finally:
        await view.stop()
        await nc.close()
        await server.astop()


async def test_latest_reads_the_bucket_when_the_watch_lags(nc: NATS, prefix: str) -> None:
    leases = NodeLeases(nc, f"{prefix}-node-leases", ttl=60)
    lm = machine("m-0", "east")
    blind = LeaseView(leases, "east")  # never started: as a watch that has not caught up
    await leases.renew(lm)
    assert blind.renewed(lm) == ""
    latest = await blind.latest(lm)
    assert (age(latest) or 99) < 10 and blind.renewed(lm) == latest
    await leases.drop(key_of(lm))
    assert await blind.latest(lm) == "" and blind.renewed(lm) == ""


async def test_a_live_lease_keeps_a_node_alive_though_the_watch_lags(
    nc: NATS, prefix: str
) -> None:
    """Before calling a node missing the reconciler reads its lease from the bucket."""
    async with system(nc, prefix) as h:
        leases = NodeLeases(nc, f"{prefix}-node-leases", ttl=60)
        blind = LeaseView(leases, "east")  # never started
        reconciler = LCMMachineReconciler(h.store, heartbeat_timeout=5.0, leases=blind)
        lm = machine("m-0", "east")
        lm.spec.machine_uid = "uid-m-0"
        lm = await h.store.create(lm)
        lm.status.hostname = "node-m-0"
        lm.status.heartbeat = "2026-01-01T00:00:00.000Z"  # written long ago
        await h.store.update_status(lm)
        await leases.renew(lm)

        async def heartbeat() -> tuple[str, str]:
            await reconciler.reconcile(Request("m-0", "team-a"))
            c = cond.get((await h.store.get(LCMMachine, "m-0", "team-a")).status, HEARTBEAT)
            assert c is not None
            return c.status, c.reason

        assert await heartbeat() == ("True", "AgentAlive")
        # No lease in the bucket either: missing (a fresh view, the old one holds the read).
        await leases.drop(key_of(lm))
        reconciler.leases = LeaseView(leases, "east")
        assert await heartbeat() == ("False", "HeartbeatMissing")
