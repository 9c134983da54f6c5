"""An unreachable or overloaded endpoint is retried with jittered exponential backoff, so a
region's agents back off together instead of hammering an endpoint that is struggling."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from aiohttp import web

from services.lcm.agent.client import AgentClient
from services.lcm.agent.executor import NodeRootExecutor
from services.lcm.agent.runner import MAX_BACKOFF, Agent
from tests.httpserve import serve
from tests.waiting import eventually


def make_agent(url: str, root: Path, poll_interval: float) -> tuple[AgentClient, Agent]:
    client = AgentClient(url, "ns", "m-0", "token")
    return client, Agent(client, NodeRootExecutor(root, hostname="m-0"), root,
                         poll_interval=poll_interval)


def test_delay_doubles_per_failure_in_a_row_jittered_and_capped(tmp_path: Path) -> None:
    random.seed(7)
    _, agent = make_agent("http://127.0.0.1:1", tmp_path, poll_interval=2.0)
    delays = [agent.unreachable_delay() for _ in range(8)]
    for n, delay in enumerate(delays, start=1):
        full = min(2.0 * 2 ** (n - 1), MAX_BACKOFF, 2.0 * 8)
        assert full * 0.5 <= delay <= full, (n, delay)
    assert max(delays) <= 16.0
    assert len({round(d, 6) for d in delays[4:]}) > 1  # jittered, not in lock step
    agent.unreachable = 0  # what the loop does after a call that succeeds
    assert agent.unreachable_delay() <= 2.0


def test_heartbeats_are_jittered_and_back_off_after_failures(tmp_path: Path) -> None:
    random.seed(11)
    _, agent = make_agent("http://127.0.0.1:1", tmp_path, poll_interval=1.0)
    agent.heartbeat_interval = 10.0
    steady = [agent.heartbeat_delay(0) for _ in range(50)]
    assert all(8.0 <= d <= 12.0 for d in steady) and len(set(steady)) > 1
    for failures in range(1, 7):
        full = 10.0 * min(2 ** failures, 8)
        assert full * 0.5 <= agent.heartbeat_delay(failures) <= full
    assert max(agent.heartbeat_delay(10) for _ in range(50)) <= 80.0


async def test_agent_backs_off_from_an_endpoint_answering_503(tmp_path: Path) -> None:
    arrivals: list[float] = []
    beats: list[str] = []

    async def overloaded(request: web.Request) -> web.Response:
        if request.method == "GET":  # the details fetches
            arrivals.append(time.monotonic())
        else:
            beats.append(request.path)
        return web.Response(status=503, text="overloaded")

    async with serve(overloaded) as url:
        client, agent = make_agent(url, tmp_path / "node", poll_interval=0.2)
        await client.start()
        agent.heartbeat_interval = 0.05  # would beat ~60 times during the test if it beat early
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await eventually(lambda: len(arrivals) >= 6, timeout=20, what="six attempts")
            gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
            # The 4th and 5th waits are at least half of 0.2 * 2**3 = 1.6 s: the backoff grew
            # (a fixed poll interval would retry every 0.2 s).
            assert min(gaps[3:5]) >= 0.8 - 0.05, gaps
            assert agent.unreachable >= 5
            # No details yet, so no heartbeats: they would only add to the endpoint's load.
            assert beats == []
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await client.close()


class CallClock:
    """The agent's client as the heartbeat loop sees it: when a call was last answered."""

    def __init__(self) -> None:
        self.answered_at = float("-inf")
        self.beats = 0

    async def heartbeat(self) -> bool:
        self.beats += 1
        self.answered_at = time.monotonic()
        return True


async def test_no_heartbeat_while_other_calls_keep_reaching_the_endpoint(tmp_path: Path) -> None:
    """An idle agent's long-poll renewals (or reports) are signs of life already; a beat is
    sent only when nothing else reached the endpoint within half an interval."""
    clock = CallClock()
    agent = Agent(clock, NodeRootExecutor(tmp_path, hostname="m-0"), tmp_path)  # type: ignore[arg-type]
    agent.heartbeat_interval = 0.2
    agent._connected.set()  # details were fetched: beats are due from now on
    stop = asyncio.Event()
    task = asyncio.create_task(agent._heartbeats(stop))
    try:
        # Other calls every 0.05 s for ten heartbeat intervals: not one beat.
        for _ in range(40):
            clock.answered_at = time.monotonic()
            await asyncio.sleep(0.05)
            assert clock.beats == 0
        # The calls stop (a long item runs, say): beats resume at the interval.
        await eventually(lambda: clock.beats >= 3, timeout=10, what="beats resumed")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
