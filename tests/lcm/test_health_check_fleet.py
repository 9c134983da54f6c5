"""MachineHealthCheck end to end: real store and bus, LCM, the simulated provider and the
fleet of simulated agents (``tests/lcm/remediation.py``), with test-sized timeouts.

A node whose agent stops reporting is rebooted once the check's timeout runs out (its
simulated node goes off, then on), comes back, and is let go; too many unhealthy machines
at once get no reboot at all until enough come back; a machine in maintenance is never
rebooted; a node a reboot does not fix is rebooted retryLimit times, a retry interval
apart, and its Machine then says remediation failed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from services.lcm.healthcheck import HEALTH_CHECK
from shared.models import REBOOT_DONE_ANNOTATION, Cluster, Machine, Resource
from shared.runtime import conditions as cond
from shared.store import Conflict
from tests.lcm.remediation import NS, Region, region
from tests.waiting import eventually

TIMEOUT = 40  # seconds for anything that needs a heartbeat to run out, a reboot and a report


@pytest.fixture
async def env(nc: NATS, prefix: str, tmp_path: Path) -> AsyncIterator[Region]:
    async with region(nc, prefix, tmp_path / "nodes") as r:
        yield r


def ready_false(seconds: int) -> list[dict[str, object]]:
    return [{"type": "Ready", "status": "False", "timeoutSeconds": seconds}]


async def rebooted(env: Region, name: str) -> str:
    """The id of the latest reboot the machine's provider answered ("" if none)."""
    m = await env.machine(name)
    request = await env.requested(name)
    return request if request and m.metadata.annotations.get(REBOOT_DONE_ANNOTATION) == request \
        else ""


async def settled(env: Region, expected: int) -> bool:
    hc = await env.check()
    return (hc.status.targets == [] and hc.status.current_healthy == expected
            and cond.is_true(hc.status, "Ready"))


async def test_a_hung_node_is_rebooted_once_and_let_go_when_it_reports_again(
    env: Region,
) -> None:
    cp0, w0, w1 = await env.create_cluster("one", workers=2)
    await env.create_check("one", maxUnhealthy=1, unhealthyConditions=ready_false(2),
                           remediation={"retryLimit": 2, "retryIntervalSeconds": 10})
    await env.deployed("one")
    await eventually(lambda: settled(env, 3), what="the check: 3 of 3 healthy")

    async with env.attempts() as attempts:
        await env.fleet.hang(w0)
        request = await eventually(lambda: rebooted(env, w0), timeout=TIMEOUT,
                                   what=f"{w0} rebooted")
        assert await env.power(w0) == ["Off", "On"]
        await eventually(lambda: env.machine_ready(w0), timeout=TIMEOUT,
                         what=f"{w0} Ready again")
        await eventually(lambda: settled(env, 3), timeout=TIMEOUT, what="the target cleared")

    m = await env.machine(w0)
    assert list(attempts) == [request], "one request, no second"
    assert await env.power(w0) == ["Off", "On"], "one power cycle"
    assert cond.get(m.status, HEALTH_CHECK) is None
    step = next(s for s in m.status.provider_steps if s.name == "Reboot")
    assert step.state == "Done" and f"as requested ({request})" in step.message
    for other in (cp0, w1):
        assert await env.power(other) == [] and await env.requested(other) == ""


async def test_too_many_unhealthy_machines_get_no_reboot_until_enough_come_back(
    env: Region,
) -> None:
    _, w0, w1 = await env.create_cluster("many", workers=2)
    # 4 s: longer than the spread of two hung nodes' missing heartbeats, so neither is
    # judged alone before the other shows.
    await env.create_check("many", maxUnhealthy=1, unhealthyConditions=ready_false(4),
                           remediation={"retryIntervalSeconds": 30})
    await env.deployed("many")
    await eventually(lambda: settled(env, 3), what="the check: 3 of 3 healthy")

    await env.fleet.hang(w0)
    await env.fleet.hang(w1)

    async def held() -> str:
        c = cond.get((await env.check()).status, "RemediationAllowed")
        ok = c is not None and c.status == "False" and c.reason == "TooManyUnhealthy"
        return c.message if ok and f"timed out: {w0}, {w1}" in c.message else ""

    message = await eventually(held, timeout=TIMEOUT, what="remediation held: 2 timed out")
    assert message == (f"2 of 3 machines are not healthy (timed out: {w0}, {w1}), more than "
                       "maxUnhealthy 1 allows: none is remediated")
    hc = await env.check()
    assert hc.status.targets == [] and hc.status.remediations_allowed == 0
    ready = cond.get(hc.status, "Ready")
    assert ready is not None and ready.reason == "TooManyUnhealthy"
    for name in (w0, w1):
        assert await env.requested(name) == "" and await env.power(name) == []
        assert cond.get((await env.machine(name)).status, HEALTH_CHECK) is None

    # One comes back by itself: the other is now within maxUnhealthy, and rebooted.
    env.fleet.repair(w1)
    await eventually(lambda: rebooted(env, w0), timeout=TIMEOUT, what=f"{w0} rebooted")
    await eventually(lambda: settled(env, 3), timeout=TIMEOUT, what="all healthy again")
    assert await env.power(w0) == ["Off", "On"]
    assert await env.power(w1) == [] and await env.requested(w1) == ""


async def edit(env: Region, cls: type[Cluster] | type[Machine], name: str, on: bool) -> None:
    for _ in range(10):
        obj: Resource = await env.store.get(cls, name, NS)
        obj.spec.maintenance = on  # type: ignore[attr-defined]
        with contextlib.suppress(Conflict):
            await env.store.update(obj)
            return
    raise AssertionError(f"could not update {cls.KIND} {name}")


async def test_a_machine_in_maintenance_is_never_rebooted(env: Region) -> None:
    _, w0, w1 = await env.create_cluster("maint", workers=2)
    await env.create_check("maint", maxUnhealthy=1, unhealthyConditions=ready_false(2),
                           remediation={"retryIntervalSeconds": 30})
    await env.deployed("maint")
    await edit(env, Cluster, "maint", True)
    await edit(env, Machine, w0, True)

    async def drained() -> bool:
        m = await env.machine(w0)
        return cond.is_true(m.status, "Maintenance") and not cond.is_true(m.status, "Ready")

    await eventually(drained, timeout=TIMEOUT, what=f"{w0} in maintenance, not Ready")
    # Both stop reporting: w0's Ready has been False for longer than the check's timeout
    # since it entered maintenance, w1's only since now.
    await env.fleet.hang(w0)
    await env.fleet.hang(w1)
    await eventually(lambda: rebooted(env, w1), timeout=TIMEOUT, what=f"{w1} rebooted")
    await eventually(lambda: env.machine_ready(w1), timeout=TIMEOUT, what=f"{w1} Ready again")
    await eventually(lambda: _no_targets(env), timeout=TIMEOUT, what="the target cleared")

    assert await env.power(w1) == ["Off", "On"]
    assert await env.requested(w0) == "" and await env.power(w0) == []
    assert cond.get((await env.machine(w0)).status, HEALTH_CHECK) is None
    assert (await env.check()).status.expected_machines == 3


async def _no_targets(env: Region) -> bool:
    return (await env.check()).status.targets == []


async def test_the_retry_limit_ends_in_remediation_failed_on_the_machine(env: Region) -> None:
    _, w0 = await env.create_cluster("limit", workers=1)
    interval = 3
    await env.create_check("limit", maxUnhealthy=1, unhealthyConditions=ready_false(2),
                           remediation={"retryLimit": 2, "retryIntervalSeconds": interval})
    await env.deployed("limit")
    await eventually(lambda: settled(env, 2), what="the check: 2 of 2 healthy")
    async with env.attempts() as attempts:
        await env.fleet.hang(w0, broken=True)  # no reboot brings this one back

        async def gave_up() -> bool:
            c = cond.get((await env.machine(w0)).status, HEALTH_CHECK)
            return c is not None and c.reason == "RemediationFailed"

        await eventually(gave_up, timeout=TIMEOUT, what=f"{w0}: RemediationFailed")
    m = await env.machine(w0)
    failed = cond.get(m.status, HEALTH_CHECK)
    assert failed is not None and (failed.status, failed.severity) == ("False", "Error")
    assert "2 reboots did not bring it back: MachineHealthCheck hc gave up" in failed.message
    assert await env.power(w0) == ["Off", "On", "Off", "On"]
    (r1, t1), (r2, t2) = sorted(attempts.items(), key=lambda kv: kv[1])
    assert t2 - t1 >= interval, "the second reboot a retry interval after the first"
    off1, off2 = await env.off_times(w0)
    assert t1 <= off1 < t2 <= off2, "each power cycle followed its own request"
    assert await env.requested(w0) == r2
    hc = await env.check()
    assert [(t.machine, t.state, t.attempts) for t in hc.status.targets] == [(w0, "Failed", 2)]
    ready = cond.get(hc.status, "Ready")
    assert ready is not None and ready.reason == "RemediationFailed"

    # Fixed by hand: it reports again, the check lets go and the condition goes.
    env.fleet.repair(w0)
    await eventually(lambda: settled(env, 2), timeout=TIMEOUT, what="the target cleared")
    assert cond.get((await env.machine(w0)).status, HEALTH_CHECK) is None
    assert await env.power(w0) == ["Off", "On", "Off", "On"], "no third reboot"
