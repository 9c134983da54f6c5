"""The event loop every service process runs on: uvloop where installed, else asyncio's.

uvloop (libuv) does the same I/O with a fraction of the interpreter's overhead per
socket event; on 2 cores that is the difference between queueing and not at 1,000
writes/s (``bench/README.md``). ``CCLOUD_EVENT_LOOP=asyncio`` selects the standard loop,
e.g. to compare the two or to rule the loop out while debugging.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

CHOICES = ("uvloop", "asyncio")


def loop_factory(choice: str | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for ``asyncio.Runner``; None means asyncio's default loop."""
    choice = (choice or os.environ.get("CCLOUD_EVENT_LOOP") or "uvloop").strip().lower()
    if choice not in CHOICES:
        options = ", ".join(CHOICES)
        raise SystemExit(f"invalid settings: CCLOUD_EVENT_LOOP={choice!r} is not one of {options}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], *, choice: str | None = None) -> T:
    """``asyncio.run`` on the chosen loop."""
    try:
        factory = loop_factory(choice)
    except SystemExit:
        main.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
