"""Run service processes, restart the ones that crash, stop them all in reverse order.

Each child gets its own log file; a crash is logged with the child's exit code and it is
restarted with exponential backoff, so one failing service never takes the region down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared.natsserver import die_with_parent

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
STABLE_AFTER = 30.0
STOP_TIMEOUT = 10.0


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    cwd: Path | None = None
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


class Supervisor:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def add(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        child = Child(name=name, argv=argv, env={**os.environ, **env},
                      log_path=self.log_dir / f"{name}.log")
        self.children.append(child)
        return child

    def python_module(self, name: str, module: str, env: dict[str, str], *args: str) -> Child:
        return self.add(name, [sys.executable, "-m", module, *args], env)

    async def _spawn(self, child: Child) -> None:
        assert child.log_path is not None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        logf = open(child.log_path, "ab")  # noqa: ASYNC230, SIM115 - handed to the child
        try:
            child.proc = await asyncio.create_subprocess_exec(
                *child.argv, env=child.env, cwd=child.cwd,
                stdout=logf, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent,
            )
        finally:
            logf.close()
        child.started_at = time.monotonic()

    async def start(self) -> None:
        for child in self.children:
            await self._spawn(child)
            self._tasks.append(asyncio.create_task(self._watch(child)))

    async def _watch(self, child: Child) -> None:
        backoff = 0.5
        while True:
            assert child.proc is not None
            code = await child.proc.wait()
            if self._stopping:
                return
            if time.monotonic() - child.started_at > STABLE_AFTER:
                backoff = 0.5
            log.warning("%s exited with code %s; restarting in %.1fs (log: %s)",
                        child.name, code, backoff, child.log_path)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
            if self._stopping:
                return
            child.restarts += 1
            await self._spawn(child)

    async def stop(self) -> None:
        self._stopping = True
        for child in reversed(self.children):
            await _terminate(child)
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()


async def _terminate(child: Child) -> None:
    proc = child.proc
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
    except TimeoutError:
        log.warning("%s did not stop in %.0fs; killing it", child.name, STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
