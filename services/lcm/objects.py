"""Writes that survive concurrent writers (agents report constantly).

``patch`` re-reads the object and re-applies ``mutate`` on ``Conflict``; ``mutate`` returns
False when nothing needs changing, which skips the write. ``mark`` sets one condition that
a controller writes on another controller's object (a health check's or a graceful
reboot's on a Machine), writing only a change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from shared.models import Resource, copy
from shared.models.meta import Status
from shared.runtime import conditions as cond
from shared.runtime import status_writer
from shared.store import Conflict, Store

R = TypeVar("R", bound=Resource)

RETRIES = 8


async def patch(store: Store, obj: R, mutate: Callable[[R], bool]) -> R:
    current = obj
    for attempt in range(RETRIES):
        if not mutate(current):
            return current
        try:
            return await store.update(current)
        except Conflict:
            if attempt + 1 == RETRIES:
                raise
            current = await store.get(type(obj), obj.metadata.name, obj.metadata.namespace)
    raise AssertionError("unreachable")


Mark = tuple[str, str, str, str]  # a condition as (status, reason, message, severity)


def holds(obj: Resource, type_: str, want: Mark | None) -> bool:
    """The object's ``type_`` condition is ``want`` already (None: it has none)."""
    have = cond.get(obj.status, type_)  # type: ignore[attr-defined]
    if have is None or want is None:
        return have is None and want is None
    return (have.status, have.reason, have.message, have.severity) == want


async def mark(store: Store, obj: Resource, type_: str, want: Mark | None, *,
               derive: Callable[[Status], None] | None = None) -> None:
    """Set the ``type_`` condition of ``obj`` to ``want`` (None: remove it), unless it is so
    already; ``obj`` is left as it is (it may be the store cache's: a copy is written, and
    a newer stored version merged as ``status_writer`` does); ``derive`` as there."""
    if holds(obj, type_, want):
        return
    mine = copy(obj)
    async with status_writer(store, mine, derive=derive) as o:
        st = o.status  # type: ignore[attr-defined]
        if want is None:
            cond.remove(st, type_)
        elif want[0] == "True":
            cond.mark_true(st, type_, want[1], want[2])
        else:
            cond.mark_false(st, type_, want[1], want[2], want[3])  # type: ignore[arg-type]
