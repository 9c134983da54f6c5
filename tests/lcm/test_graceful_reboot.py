"""GracefulRebootRequest end to end: real store and bus, LCM, the simulated provider and the
fleet of simulated agents (``tests/lcm/remediation.py``: an agent runs while its node is on).

Every machine of the request is drained, power cycled once, and uncordoned by its agent
after the reboot, one machine at a time in the upgrade order (control plane first); the
cluster's rollout never undoes the cordon meanwhile; a machine left out of the request is
untouched; a node that cannot be drained stops the request there, and deleting the request
lets go of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from services.lcm.objects import patch
from shared.models import (
    GRACEFUL_REBOOT_ANNOTATION,
    Cluster,
    GracefulRebootRequest,
    LCMMachine,
    Machine,
    Resource,
    convert,
)
from shared.runtime import conditions as cond
from shared.store import NotFound
from shared.tasks import cancel_all
from tests.lcm.remediation import NS, REGION, Region, region
from tests.waiting import eventually

TIMEOUT = 60  # a drain, a power cycle and the agent's return, per machine
PDB = "error: cannot evict pod default/web-1: would violate the PodDisruptionBudget"


@pytest.fixture
async def env(nc: NATS, prefix: str, tmp_path: Path) -> AsyncIterator[Region]:
    async with region(nc, prefix, tmp_path / "nodes") as r:
        yield r


async def request_reboot(env: Region, cluster: str, **spec: Any) -> None:
    await env.store.create(convert(GracefulRebootRequest, {
        "metadata": {"name": cluster, "namespace": NS},
        "spec": {"region": REGION} | spec}))


async def grr(env: Region, name: str) -> GracefulRebootRequest:
    return await env.store.get(GracefulRebootRequest, name, NS)


async def gone(env: Region, name: str) -> bool:
    try:
        await grr(env, name)
    except NotFound:
        return True
    return False


async def reboot_condition(env: Region, cls: type[Cluster] | type[Machine], name: str,
                           ) -> tuple[str, str, str] | None:
    c = cond.get((await env.store.get(cls, name, NS)).status, "GracefulReboot")
    return None if c is None else (c.status, c.reason, c.message)


async def completed(env: Region, name: str) -> tuple[str, str, str] | None:
    """The cluster's GracefulReboot once its request completed and is gone (as MCC's)."""
    c = await reboot_condition(env, Cluster, name)
    return c if c is not None and c[:2] == ("True", "Completed") and await gone(env, name) \
        else None


def report(r: GracefulRebootRequest) -> tuple[str, tuple[tuple[str, str], ...], int, int]:
    """What the request says: phase, (machine, step) per target, rebooted of total."""
    st = r.status
    return st.phase, tuple((t.machine, t.state) for t in st.targets), st.rebooted, st.total


@contextlib.asynccontextmanager
async def changes(env: Region, cls: type[Resource], view: Callable[[Any], Any],
                  ) -> AsyncIterator[list[tuple[str, Any]]]:
    """Each object's ``view`` as it changes meanwhile, as (name, view) in the order seen."""
    log: list[tuple[str, Any]] = []
    last: dict[str, Any] = {}

    async def follow() -> None:
        async for ev in env.store.watch(cls, NS):
            name, now = ev.object.metadata.name, view(ev.object)
            if name not in last or last[name] != now:
                last[name] = now
                log.append((name, now))

    task = asyncio.create_task(follow())
    try:
        yield log
    finally:
        await cancel_all([task])


def of(log: list[tuple[str, Any]], name: str) -> list[Any]:
    return [v for n, v in log if n == name]


def in_flight(reported: tuple[str, tuple[tuple[str, str], ...], int, int]) -> list[str]:
    return [m for m, state in reported[1] if state not in ("Waiting", "Done", "Skipped")]


async def test_every_machine_is_drained_rebooted_and_uncordoned_one_at_a_time(
    env: Region,
) -> None:
    names = cp0, w0, w1 = await env.create_cluster("one", workers=2)
    await env.deployed("one")

    async with changes(env, LCMMachine, lambda lm: (lm.spec.cordoned, lm.status.cordoned)) \
            as cordons, changes(env, GracefulRebootRequest, report) as reports, \
            changes(env, Cluster, lambda c: c.status.phase) as phases:
        await request_reboot(env, "one")
        done = await eventually(lambda: completed(env, "one"), timeout=3 * TIMEOUT,
                                what="the graceful reboot completed")
        await env.deployed("one")

    assert done == ("True", "Completed", "3 of 3 machines rebooted")
    assert of(reports, "one")[-1] == ("Completed", tuple((n, "Done") for n in names), 3, 3)
    for n in names:
        mark = await reboot_condition(env, Machine, n)
        assert mark is not None and mark[:2] == ("True", "Rebooted"), (n, mark)
        assert await env.power(n) == ["Off (graceful)", "On"], f"{n}: one shutdown and power on"
        # Cordoned, drained (the agent's ack), uncordoned, and the ack of an agent that came
        # back after the reboot - never uncordoned half-way by the cluster's rollout.
        assert of(cordons, n) == [(False, False), (True, False), (True, True), (False, True),
                                  (False, False)], n
        lm = await env.store.get(LCMMachine, n, NS)
        assert GRACEFUL_REBOOT_ANNOTATION not in lm.metadata.annotations
    flights = [in_flight(r) for r in of(reports, "one")]
    assert max(len(f) for f in flights) == 1, "one machine at a time"
    order = [f[0] for f in flights if f]
    assert list(dict.fromkeys(order)) == [cp0, w0, w1], "control plane first, then workers"
    offs = [(await env.off_times(n))[0] for n in names]
    assert offs == sorted(offs)
    # The cluster says what goes on, and never takes a reboot's uncordon for an upgrade's.
    cluster_phases = of(phases, "one")
    assert set(cluster_phases) == {"Ready", "Rebooting"}, cluster_phases
    assert cluster_phases[-1] == "Ready"


async def test_only_the_listed_machines_are_rebooted(env: Region) -> None:
    cp0, w0, w1 = await env.create_cluster("two", workers=2)
    await env.deployed("two")
    await request_reboot(env, "two", machines=[w1])
    done = await eventually(lambda: completed(env, "two"), timeout=TIMEOUT,
                            what="the graceful reboot completed")
    assert done == ("True", "Completed", "1 of 1 machines rebooted")
    assert await env.power(w1) == ["Off (graceful)", "On"]
    assert await env.power(cp0) == [] and await env.power(w0) == []
    assert await reboot_condition(env, Machine, cp0) is None, "not part of it"
    # Done and gone: the same name asks again.
    await request_reboot(env, "two", machines=[w0])
    await eventually(lambda: completed(env, "two"), timeout=TIMEOUT, what="the second one")
    assert await env.power(w0) == ["Off (graceful)", "On"]


async def test_an_undrainable_node_holds_the_request_and_deleting_it_lets_go(
    env: Region, tmp_path: Path,
) -> None:
    cp0, w0, w1 = await env.create_cluster("three", workers=2)
    await env.deployed("three")
    fail = tmp_path / "nodes" / NS / w0 / "etc/ccloud/fail/cordon"
    fail.parent.mkdir(parents=True, exist_ok=True)
    fail.write_text(PDB)
    await request_reboot(env, "three", machines=[w0, w1])

    async def held() -> str:
        r = await grr(env, "three")
        ready = cond.get(r.status, "Ready")
        return ready.message if ready is not None and PDB in ready.message else ""

    message = await eventually(held, timeout=TIMEOUT, what="the drain failure reported")
    assert message.startswith(f"{w0} draining (cordon and drain failed: {PDB})")
    r = await grr(env, "three")
    assert r.status.phase == "InProgress"
    assert [(t.machine, t.state) for t in r.status.targets] == [(w0, "Draining"), (w1, "Waiting")]
    assert await env.power(w0) == [] and await env.power(w1) == [], "nothing rebooted undrained"
    # The cluster and the machine say so too.
    cluster_mark = await reboot_condition(env, Cluster, "three")
    assert cluster_mark is not None and cluster_mark[:2] == ("False", "InProgress")
    assert PDB in cluster_mark[2]
    assert await reboot_condition(env, Machine, w0) == (
        "False", "Draining", f"cordon and drain failed: {PDB}")

    await env.store.delete(GracefulRebootRequest, "three", NS)
    await eventually(lambda: gone(env, "three"), timeout=TIMEOUT, what="the request gone")
    lm = await env.store.get(LCMMachine, w0, NS)
    assert GRACEFUL_REBOOT_ANNOTATION not in lm.metadata.annotations
    assert not lm.spec.cordoned, "let go: uncordoned"
    assert await env.power(w0) == [] and await env.power(w1) == []
    assert await env.requested(w0) == ""
    assert await reboot_condition(env, Cluster, "three") == (
        "False", "Cancelled", "the request was deleted with 0 of 2 machines rebooted")
    assert await reboot_condition(env, Machine, w0) is None, "no longer in flight"


async def test_an_upgrade_written_during_a_reboot_waits_for_the_node_in_flight(
    env: Region,
) -> None:
    names = await env.create_cluster("four", workers=1)
    await env.deployed("four")

    async def started() -> bool:
        r = await grr(env, "four")
        return any(t.state in ("Draining", "Rebooting") for t in r.status.targets)

    def node(lm: LCMMachine) -> tuple[bool, str, bool]:
        return (GRACEFUL_REBOOT_ANNOTATION in lm.metadata.annotations, lm.spec.release,
                lm.spec.cordoned or lm.status.cordoned)

    async with changes(env, LCMMachine, node) as nodes:
        await request_reboot(env, "four")
        await eventually(started, timeout=TIMEOUT, what="the first machine in flight")
        # As a user's edit: read again on a conflict (the controllers write it meanwhile).
        def upgrade(c: Cluster) -> bool:
            c.spec.release = "mke-3-8-0"
            return True

        await patch(env.store, await env.store.get(Cluster, "four", NS), upgrade)

        async def upgraded() -> bool:
            c = await env.store.get(Cluster, "four", NS)
            return c.status.release == "mke-3-8-0" and cond.is_true(c.status, "Ready")

        await eventually(lambda: completed(env, "four"), timeout=3 * TIMEOUT,
                         what="the graceful reboot completed")
        await eventually(upgraded, timeout=TIMEOUT, what="the upgrade done")

    for n in names:
        assert await env.power(n) == ["Off (graceful)", "On"], f"{n}: one shutdown and power on"
        lm = await env.store.get(LCMMachine, n, NS)
        assert (lm.status.release, lm.spec.cordoned) == ("mke-3-8-0", False)
        # No upgrade step changed a node while a reboot held it.
        held = [release for marked, release, _ in of(nodes, n) if marked]
        assert held and len(set(held)) == 1, (n, of(nodes, n))
    # Nor did the upgrade take a second node out while one was rebooting.
    out: dict[str, bool] = {}
    most = 0
    for n, (_, _, cordoned) in nodes:
        out[n] = cordoned
        most = max(most, sum(out.values()))
    assert most == 1, nodes
