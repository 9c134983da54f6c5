"""Share one fresh read among the callers waiting for it, without ever serving stale data.

Every Cluster write needs the current release data, and under load many of them ask at
once. ``FreshRead`` lets callers join a read that has *not started yet*: a read starts
only after every caller it answers has arrived, so each caller still sees every write
committed before it asked (the same guarantee as reading alone). Reads of one
``FreshRead`` run one at a time; callers arriving during a read wait for the next one, so
under load one read answers a whole batch and the cost per caller falls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FreshRead(Generic[T]):
    """``await fresh()`` returns the result of a ``read()`` started after the call."""

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._lock = asyncio.Lock()
        self._next: asyncio.Future[T] | None = None  # the batch not started yet
        self._tasks: set[asyncio.Task[None]] = set()
        self.reads = 0

    async def __call__(self) -> T:
        fut = self._next
        if fut is None:
            fut = self._next = asyncio.get_running_loop().create_future()
            fut.add_done_callback(_retrieve)
            task = asyncio.create_task(self._run(fut))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Shielded: one caller giving up must not cancel the read the others wait for.
        return await asyncio.shield(fut)

    async def _run(self, fut: asyncio.Future[T]) -> None:
        try:
            async with self._lock:
                if self._next is fut:
                    self._next = None  # started: later callers wait for the next read
                self.reads += 1
                result = await self._read()
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except Exception as e:
            if not fut.done():
                fut.set_exception(e)
        else:
            fut.set_result(result)


def _retrieve(fut: asyncio.Future) -> None:
    """Mark the error seen when every caller left before it arrived (no loop warning)."""
    if not fut.cancelled():
        fut.exception()
