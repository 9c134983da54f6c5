"""A service whose components cannot start yet (NATS restarting, a cache not caught up)
tries again instead of ending, as a restarted pod would."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from shared import service
from shared.config import Settings
from shared.service import Parts, Runtime, serve
from shared.store import Unavailable
from tests.waiting import eventually


class Part:
    """A component that refuses to start ``failures`` times."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.starts = 0
        self.stops = 0
        self.running = False

    async def start(self) -> None:
        self.starts += 1
        if self.starts <= self.failures:
            raise Unavailable("the Cluster cache is not catching up")
        self.running = True

    async def stop(self) -> None:
        self.stops += 1
        self.running = False


async def test_components_that_fail_to_start_are_started_again(
    nats_server, prefix: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(service, "START_RETRY", 0.05)
    first, flaky, last = Part(), Part(failures=2), Part()

    async def build(rt: Runtime) -> Parts:
        return Parts(leader=[first, flaky, last])

    stop = asyncio.Event()
    settings = Settings(nats_url=nats_server.url, prefix=prefix, lease_seconds=2.0)
    task = asyncio.create_task(serve("start-retry", build, settings, stop=stop))
    try:
        await eventually(lambda: first.running and flaky.running and last.running,
                         what="every component running after two failed starts")
        assert not task.done()
        assert (first.starts, flaky.starts, last.starts) == (3, 3, 1)
        # Each failed attempt stopped what it had started, the failing one included.
        assert (first.stops, flaky.stops, last.stops) == (2, 2, 0)
        assert "starting Part failed: the Cluster cache is not catching up" in caplog.text
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 20)
    assert not (first.running or flaky.running or last.running)  # stopped with the service


async def test_a_service_stopped_while_waiting_to_start_again_ends(
    nats_server, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "START_RETRY", 60.0)
    never = Part(failures=10**6)

    async def build(rt: Runtime) -> Parts:
        return Parts(leader=[never])

    stop = asyncio.Event()
    settings = Settings(nats_url=nats_server.url, prefix=prefix, lease_seconds=2.0)
    task = asyncio.create_task(serve("start-never", build, settings, stop=stop))
    await eventually(lambda: never.starts == 1 and never.stops == 1, what="a failed start")
    stop.set()
    await asyncio.wait_for(task, 20)  # not the 60 s backoff
    assert never.starts == 1
