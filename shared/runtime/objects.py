"""Object helpers for reconcilers: status writes with conflict retry, finalizers.

Every successful status write reports its condition changes to the bound event recorder
(``shared.runtime.recorder``), fire-and-forget.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import msgspec

from shared.models import Resource, Status
from shared.runtime import recorder
from shared.store import Conflict, NotFound, Store

R = TypeVar("R", bound=Resource)

STATUS_RETRIES = 5

_enc = msgspec.json.Encoder()


async def update_status(
    store: Store, obj: R, mutate: Callable[[R], None] | Callable[[R], Awaitable[None]]
) -> R:
    """Apply ``mutate`` to the status and write it, re-reading and re-applying on conflict."""
    current = obj
    for attempt in range(STATUS_RETRIES):
        before = _enc.encode(current.status)  # type: ignore[attr-defined]
        result = mutate(current)
        if isinstance(result, Awaitable):
            await result
        if _enc.encode(current.status) == before:  # type: ignore[attr-defined]
            return current
        try:
            out = await store.update_status(current)
        except Conflict:
            if attempt + 1 == STATUS_RETRIES:
                raise
            current = await store.get(type(obj), obj.metadata.name, obj.metadata.namespace)
            continue
        if recorder.current() is not None:
            old = msgspec.json.decode(before, type=type(current.status))  # type: ignore[attr-defined]
            recorder.record_status_change(out, old, current.status)  # type: ignore[attr-defined]
        return out
    raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def status_writer(
    store: Store, obj: R, *, derive: Callable[[Status], None] | None = None
) -> AsyncIterator[R]:
    """Write the status once, when the block exits (also on error), if it changed.

    Several controllers may own different fields of one status (a provider and LCM both
    report on a Machine): on conflict only the fields this pass changed (and, for
    conditions, only the condition types it touched) are applied to the fresh object.
    ``derive`` recomputes fields that follow from others (a summary condition) on exactly
    what is written, the fresh object after a merge included, so the summary rides along
    with the write that changed its inputs instead of needing a write of its own.
    """
    before = msgspec.json.decode(_enc.encode(obj.status), type=type(obj.status))  # type: ignore[attr-defined]
    try:
        yield obj
    finally:
        if derive is not None:
            derive(obj.status)  # type: ignore[attr-defined]
        with contextlib.suppress(NotFound):
            await write_status(store, obj, before, derive=derive)


def _merge(fresh: Status, before: Status, ours: Status) -> None:
    for name in ours.__struct_fields__:
        old, new = getattr(before, name), getattr(ours, name)
        if _enc.encode(old) == _enc.encode(new):
            continue
        if name == "conditions":
            olds = {c.type: c for c in old}
            news = {c.type: c for c in new}
            touched = {t for t in olds.keys() | news.keys()
                       if _enc.encode(olds.get(t)) != _enc.encode(news.get(t))}
            kept = [c for c in fresh.conditions if c.type not in touched]
            fresh.conditions = kept + [c for c in new if c.type in touched]
        else:
            setattr(fresh, name, new)


async def write_status(
    store: Store, obj: R, before: Status | None = None, *,
    derive: Callable[[Status], None] | None = None,
) -> R:
    """Write ``obj.status``; with ``before``, merge only what changed since it (and
    re-``derive`` on the merged status)."""
    if before is not None and _enc.encode(before) == _enc.encode(obj.status):  # type: ignore[attr-defined]
        return obj
    current = obj
    for attempt in range(STATUS_RETRIES):
        try:
            out = await store.update_status(current)
        except Conflict:
            if attempt + 1 == STATUS_RETRIES:
                raise
            current = await store.get(type(obj), obj.metadata.name, obj.metadata.namespace)
            if before is None:
                current.status = obj.status  # type: ignore[attr-defined]
            else:
                _merge(current.status, before, obj.status)  # type: ignore[attr-defined]
                if derive is not None:
                    derive(current.status)  # type: ignore[attr-defined]
            continue
        # What this pass changed is ``before`` -> ours; the conditions of other writers
        # merged in on conflict are theirs to report.
        recorder.record_status_change(out, before, obj.status)  # type: ignore[attr-defined]
        return out
    raise AssertionError("unreachable")


async def ensure_finalizer(store: Store, obj: R, finalizer: str) -> R:
    if finalizer in obj.metadata.finalizers or obj.deleting:
        return obj
    obj.metadata.finalizers.append(finalizer)
    return await store.update(obj)


async def remove_finalizer(store: Store, obj: R, finalizer: str) -> R | None:
    """Drop ``finalizer``; returns None when that let the object go."""
    for attempt in range(STATUS_RETRIES):
        if finalizer not in obj.metadata.finalizers:
            return obj
        obj.metadata.finalizers = [f for f in obj.metadata.finalizers if f != finalizer]
        try:
            out = await store.update(obj)
        except NotFound:
            return None
        except Conflict:
            if attempt + 1 == STATUS_RETRIES:
                raise
            try:
                obj = await store.get(type(obj), obj.metadata.name, obj.metadata.namespace)
            except NotFound:
                return None
            continue
        if out.deleting and not out.metadata.finalizers:
            try:
                return await store.get(type(obj), obj.metadata.name, obj.metadata.namespace)
            except NotFound:
                return None
        return out
    raise AssertionError("unreachable")
