"""The one store interface every backend implements (the system of record).

Semantics follow the Kubernetes API for custom resources with a status subresource:

- ``create`` assigns uid, resourceVersion, generation=1 and creationTimestamp; status in
  the payload is ignored. A duplicate name raises ``AlreadyExists``.
- ``update`` writes metadata and spec, keeps the stored status, requires the caller's
  resourceVersion to match (else ``Conflict``) and bumps generation only when spec changed.
  Removing the last finalizer of an object being deleted removes it.
- ``update_status`` writes status only, with the same precondition.
- ``patch_status`` applies a JSON merge patch (RFC 7386) to the stored status, as
  ``PATCH .../status`` with ``application/merge-patch+json``: spec and metadata stay as
  they are, generation too; a status the patch makes invalid raises ``Invalid`` and writes
  nothing.
- ``delete`` sets deletionTimestamp while finalizers remain, else removes the object.
- ``watch`` yields changes after ``resource_version`` (exclusive); with none it first yields
  every current object as ADDED. A version the backend no longer keeps raises ``Gone``.
"""

from __future__ import annotations

import abc
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, Literal, TypeVar

import msgspec

from shared.mergepatch import merge_patch
from shared.models import Resource, ValidationError, convert, to_dict
from shared.store.errors import Conflict, Invalid, NotFound

R = TypeVar("R", bound=Resource)

EventType = Literal["ADDED", "MODIFIED", "DELETED"]

# Read-merge-write rounds of ``Store.patch_status`` that may lose to concurrent writers.
PATCH_ATTEMPTS = 8


class WatchEvent(msgspec.Struct, Generic[R], frozen=True):
    type: EventType
    object: R


class ListResult(msgspec.Struct, Generic[R]):
    items: list[R]
    resource_version: str
    continue_token: str | None = None


class _Continue(msgspec.Struct, array_like=True):
    after: str
    rv: str


def encode_continue(after: str, rv: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(_Continue(after, rv))).decode()


def decode_continue(token: str) -> _Continue:
    try:
        return msgspec.json.decode(base64.urlsafe_b64decode(token.encode()), type=_Continue)
    except Exception:
        raise Invalid("invalid continue token") from None


def check_status_patch(patch: Any) -> None:
    if not isinstance(patch, dict):
        raise Invalid(f"a status patch must be a JSON object, not {type(patch).__name__}",
                      field="status")


def patched_status(stored: R, patch: dict[str, Any]) -> R:
    """``stored`` with ``patch`` merged into its status (its resourceVersion kept, as the
    precondition of the write); ``Invalid`` naming the field if the result does not fit."""
    data = to_dict(stored)
    data["status"] = merge_patch(data.get("status") or {}, patch)
    try:
        return convert(type(stored), data)
    except ValidationError as e:
        field = e.path.removeprefix("$.")
        raise Invalid(f"{stored.kind} {stored.metadata.name!r} is invalid: {field}: {e.reason}",
                      field=field) from None


def object_key(obj: Resource) -> str:
    ns = obj.metadata.namespace or ""
    return f"{obj.kind}/{ns}/{obj.metadata.name}"


class Store(abc.ABC):
    """Async store of resources; see the module docstring for the contract."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections; called once before use."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abc.abstractmethod
    async def get(self, cls: type[R], name: str, namespace: str | None = None) -> R: ...

    @abc.abstractmethod
    async def list(
        self,
        cls: type[R],
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListResult[R]: ...

    @abc.abstractmethod
    async def create(self, obj: R) -> R: ...

    @abc.abstractmethod
    async def update(self, obj: R) -> R: ...

    @abc.abstractmethod
    async def update_status(self, obj: R) -> R: ...

    async def patch_status(
        self, cls: type[R], name: str, namespace: str | None, patch: dict[str, Any]
    ) -> R:
        """Merge ``patch`` (wire names, ``null`` removes a field) into the stored status.

        This default reads the object, merges, and writes with ``update_status`` on the
        version it read, retrying on ``Conflict`` a bounded number of times: concurrent
        writers of other status fields are not lost. Backends with a server-side patch
        override it.
        """
        check_status_patch(patch)
        for attempt in range(PATCH_ATTEMPTS):
            stored = await self.get(cls, name, namespace)
            patched = patched_status(stored, patch)
            if patched.status == stored.status:  # type: ignore[attr-defined]
                return stored  # a no-op writes nothing, as on the API server
            try:
                return await self.update_status(patched)
            except Conflict:
                if attempt + 1 >= PATCH_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    @abc.abstractmethod
    async def delete(
        self,
        cls: type[R],
        name: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
    ) -> R | None:
        """Return the object still present (finalizers pending) or None once removed."""

    @abc.abstractmethod
    def watch(
        self,
        cls: type[R],
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
    ) -> AsyncIterator[WatchEvent[R]]: ...

    def follows(self, cls: type[Resource]) -> bool:
        """Whether an in-memory cache of ``cls`` is kept (started by a list of the kind): then
        ``cached`` answering None means the object was absent as of the cache's revision."""
        return False

    async def peek(self, cls: type[R], name: str, namespace: str | None = None) -> R | None:
        """The object as this process's cache of its kind last saw it (possibly a moment
        behind; shared, not a copy), else as read from the store; None when absent. For
        checks that may be a moment late, and read afresh before acting on a refusal."""
        if self.follows(cls):
            return self.cached(cls, name, namespace, at_least=0, shared=True)
        try:
            return await self.get(cls, name, namespace)
        except NotFound:
            return None

    def cached_all(self, cls: type[R]) -> list[R] | None:
        """Every object of ``cls`` as this process's cache of the kind last saw it, without
        a round trip (shared, not copies; possibly a moment behind; objects that no longer
        decode left out); None while no cache of the kind is kept or it has not caught up
        once. For readers that only look and may be a moment late, e.g. the gateway's fleet
        metrics at every scrape."""
        return None

    def cached(self, cls: type[R], name: str, namespace: str | None, *,
               at_least: int, shared: bool = False) -> R | None:
        """A private copy of the object from an in-memory cache that has applied every
        write of its kind up to revision ``at_least``, else None (no cache, or it has not
        caught up): a controller woken by the write at ``at_least`` reads it without a
        round trip. Possibly older than the store by later writes, whose own events
        follow; a write based on it is compare-and-set like any other. ``shared=True``
        hands out the cached object itself, for a caller that only looks at it."""
        return None

    async def list_all(
        self,
        cls: type[R],
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        where: Callable[[R], bool] | None = None,
        shared: bool = False,
    ) -> list[R]:
        """Every page of a list, for controllers that need the whole set.

        ``where`` filters further (e.g. on a spec field); a backend that holds the objects
        in memory applies it before copying them, so it must only read the object.
        ``shared=True`` lets such a backend hand out its cached objects themselves: for a
        reconciler that only reads them (and copies one before changing it), as
        controller-runtime's cache reader does without its deep copy.
        """
        items: list[R] = []
        token: str | None = None
        while True:
            page = await self.list(
                cls, namespace, label_selector=label_selector, limit=500, continue_token=token
            )
            items.extend(o for o in page.items if where is None or where(o))
            token = page.continue_token
            if not token:
                return items
