"""Stopping the tasks a component owns, without ever hanging shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)

STOP_TIMEOUT = 2.0


async def cancel_all(tasks: Iterable[asyncio.Task[object]], timeout: float = STOP_TIMEOUT) -> None:
    """Cancel ``tasks`` and wait for them at most ``timeout`` seconds.

    A library that swallows a cancellation (nats-py's request can lose one to a reply
    that races it, see ``raise_if_cancelling``) would otherwise keep a ``stop()`` waiting
    forever.
    """
    pending = [t for t in tasks if not t.done()]
    for t in pending:
        t.cancel()
    if not pending:
        return
    _, stuck = await asyncio.wait(pending, timeout=timeout)
    for t in stuck:
        log.warning("task %s did not stop within %.0fs; abandoning it", t.get_name(), timeout)


def raise_if_cancelling() -> None:
    """Call in a loop's ``except Exception`` and after its remote calls: some libraries
    turn a cancellation into an ordinary error (nats-py's JetStream publish), or lose it
    when the reply races it (3.11's ``wait_for``, in nats-py's request), and the loop
    would go on forever. Python 3.11 still knows the task is being cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def ignore_outcome(fut: asyncio.Future[object]) -> None:
    """Done-callback for a future nobody awaits: reads its outcome, so a failure is not
    logged as "exception was never retrieved" (the caller has its own way to recover)."""
    if not fut.cancelled():
        fut.exception()
