"""A replica for the leader-failover test: while it leads, it appends beats to a file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time

from shared.config import Settings
from shared.service import Parts, Runtime, serve


def _append(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line)


class Beater:
    def __init__(self, path: str) -> None:
        self.path = path
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            _append(self.path, f"{os.getpid()} {time.time():.6f}\n")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def main() -> None:
    beats = sys.argv[1]

    async def build(rt: Runtime) -> Parts:
        return Parts(leader=[Beater(beats)])

    asyncio.run(serve("demo", build, Settings.from_env()))


if __name__ == "__main__":
    main()
