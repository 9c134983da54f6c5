"""Spec/metadata writes that survive concurrent status writers (agents report constantly).

``patch`` re-reads the object and re-applies ``mutate`` on ``Conflict``; ``mutate`` returns
False when nothing needs changing, which skips the write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from shared.models import Resource
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
