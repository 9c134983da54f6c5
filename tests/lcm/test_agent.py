"""Agent processes: crash mid-item and resume without re-running finished items; a missing
heartbeat marks the machine unhealthy; a wrong token is refused."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp

from services.lcm.agent.journal import JOURNAL
from services.lcm.clock import age
from shared.models import LCMMachine, Machine
from shared.runtime import conditions as cond
from tests.lcm.conftest import NS, Lcm
from tests.waiting import eventually


def starts(root: Path) -> list[str]:
    log = root / "var/log/ccloud/applied.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [ln.split()[2] for ln in lines if ln.split()[1] == "start"]


async def item_state(lcm: Lcm, machine: str, item: str) -> str:
    lm = await lcm.lcm_machine(machine)
    st = lm.status.state_items.get(item)
    return st.state if st else ""


async def test_agent_killed_mid_item_resumes_without_rerunning(lcm: Lcm) -> None:
    (name,) = await lcm.create_cluster("solo", release="mke-3-7-1", cps=1, workers=0)
    hold = lcm.root(name) / "etc/ccloud/hold/mke-images"
    hold.parent.mkdir(parents=True)
    hold.write_text("")
    await eventually(lambda: lcm.find(LCMMachine, name), what="LCMMachine")
    await lcm.start_agent(name)
    async def running() -> bool:
        return await item_state(lcm, name, "mke-images") == "Running"

    await eventually(running, what="item running", timeout=15)

    async def preparing() -> bool:  # the controller's reading of that report follows it
        return (await lcm.lcm_machine(name)).status.phase == "Prepare"

    await eventually(preparing, what="phase Prepare while the item runs")

    assert await lcm.kill_agent(name, signal.SIGKILL) == -signal.SIGKILL
    hold.unlink()
    await lcm.start_agent(name)
    await eventually(lambda: lcm.ready("solo"), timeout=20, what="cluster Ready")

    ran = starts(lcm.root(name))
    assert ran.count("host-prepare") == 1 and ran.count("container-runtime") == 1
    assert ran.count("mke-images") == 2  # interrupted, so run again
    assert ran.count("mke-join") == 1 and ran.count("addons") == 1
    assert (lcm.root(name) / JOURNAL).exists()
    lm = await lcm.lcm_machine(name)
    assert lm.status.state_items["mke-images"].attempts == 1  # the new agent's first try


async def test_missing_heartbeat_marks_machine_unhealthy(lcm: Lcm) -> None:
    (name,) = await lcm.create_cluster("beat", release="mke-3-7-1", cps=1, workers=0)
    await eventually(lambda: lcm.find(LCMMachine, name), what="LCMMachine")
    await lcm.start_agent(name)
    await eventually(lambda: lcm.ready("beat"), timeout=20, what="cluster Ready")

    # Alive on its lease alone: the stored heartbeat grows older than the timeout (it is
    # written once per status interval) while the node stays healthy.
    timeout = lcm.settings.heartbeat_timeout
    assert lcm.settings.heartbeat_status_interval > 2 * timeout
    flips: list[object] = []

    async def alive_on_its_lease() -> bool:
        st = (await lcm.lcm_machine(name)).status
        if not cond.is_true(st, "Heartbeat"):
            flips.append(cond.get(st, "Heartbeat"))
        return (age(st.heartbeat) or 0.0) > timeout + 1

    await eventually(alive_on_its_lease, timeout=timeout + 15, interval=0.2,
                     what="stored heartbeat older than the timeout")
    assert flips == [], flips

    await lcm.kill_agent(name, signal.SIGKILL)

    async def unhealthy() -> bool:
        hb = cond.get((await lcm.lcm_machine(name)).status, "Heartbeat")
        return hb is not None and hb.reason == "HeartbeatMissing"

    await eventually(unhealthy, timeout=15, what="HeartbeatMissing")

    async def cluster_degraded() -> bool:
        c = await lcm.cluster("beat")
        m = await lcm.store.get(Machine, name, NS)
        return c.status.ready_machines == 0 and not cond.is_true(m.status, "LCMReady")

    await eventually(cluster_degraded, timeout=10, what="cluster and Machine see it")
    c = await lcm.cluster("beat")
    assert "no heartbeat" in (cond.get(c.status, "MachinesReady")).message
    # Back again: healthy, and nothing re-run.
    before = starts(lcm.root(name))
    await lcm.start_agent(name)
    await eventually(lambda: lcm.ready("beat"), timeout=20, what="Ready again")
    assert starts(lcm.root(name)) == before


async def test_endpoint_refuses_wrong_token(lcm: Lcm) -> None:
    (name,) = await lcm.create_cluster("auth", release="mke-3-7-1", cps=1, workers=0)
    await eventually(lambda: lcm.find(LCMMachine, name), what="LCMMachine")
    url = f"{lcm.endpoint.url}/lcm/v1/machines/{NS}/{name}"
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as r:
            assert r.status == 401
        async with s.get(url, headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 401
        async with s.get(url + "x", headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 404
    proc = await lcm.start_agent(name, token="0" * 64)
    code = await asyncio.to_thread(proc.wait, 15)
    lcm.agents.pop(name)
    assert code == 2
    log = (lcm.roots / f"{name}.agent.log").read_text()
    assert "refused this machine's token" in log and "0" * 64 not in log
    assert (await lcm.lcm_machine(name)).status.hostname == ""
