"""Reads a reconcile has already made, handed to its own first ``get`` of the same object.

The controller runtime reads an object (and its Machine and Cluster) to see whether it is
paused before calling the reconciler, which then reads the same object again: a second
round trip per reconcile, the most common one. Inside ``scope()`` those reads are offered
here and the reconcile's first ``get`` of each takes it instead of asking the server: the
same answer that get would have had a moment earlier. Each offer serves one get, and the
first write in the scope (of any object, before it is sent) drops them all, so a reconcile
never reads back less than it wrote.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from shared.models import Resource

R = TypeVar("R", bound=Resource)
_Key = tuple[str, str, str]

_offers: ContextVar[dict[_Key, Resource] | None] = ContextVar("prefetched", default=None)


def _key(kind: str, name: str, namespace: str | None) -> _Key:
    return kind, namespace or "", name


@contextmanager
def scope() -> Iterator[None]:
    token = _offers.set({})
    try:
        yield
    finally:
        _offers.reset(token)


def offer(obj: Resource) -> None:
    """Keep ``obj`` (as just read, not to be mutated by the caller) for one later get."""
    offers = _offers.get()
    if offers is not None:
        offers[_key(obj.kind, obj.metadata.name, obj.metadata.namespace)] = obj


def take(cls: type[R], name: str, namespace: str | None) -> R | None:
    offers = _offers.get()
    if not offers:
        return None
    return offers.pop(_key(cls.KIND, name, namespace), None)  # type: ignore[return-value]


def writing() -> None:
    """A write is about to be sent: earlier reads must not be handed out any more."""
    offers = _offers.get()
    if offers:
        offers.clear()
