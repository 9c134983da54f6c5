"""Wake-ups for long-polling agents: LCMMachine change events fanned out by (namespace, name).

One plain core-NATS subscription per endpoint process on the region's LCMMachine subjects
(the events every store write publishes). Nothing is acked or replayed: a lost event only
delays a waiter to its safety re-check at the end of its wait. A waiter is a small object
with an ``asyncio.Event`` in a dict keyed by (namespace, name) - no task per waiter, so
thousands of held requests cost little. Events name a version, not content, so a woken
waiter re-reads the object; an event that cannot have changed the spec (same uid, no newer
generation: a heartbeat or a status report) wakes nobody. A waiter also remembers the
newest generation events named, so a re-read that is behind them (a store read cache not
yet updated) is noticed and retried rather than taken for "unchanged".
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
from nats.aio.client import Client as NATS

from shared.bus import ChangeEvent
from shared.natsutil import close_subscription

log = logging.getLogger(__name__)

Key = tuple[str, str]

_decode = msgspec.json.Decoder(ChangeEvent).decode


class Waiter:
    """One held request's wake-up; ``seen`` records the version it answered from."""

    __slots__ = ("_event", "_newest", "_newest_uid", "generation", "uid")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.uid = ""
        self.generation = 0
        self._newest_uid = ""
        self._newest = 0.0  # newest generation events named for _newest_uid (inf: deleted)

    def seen(self, uid: str, generation: int) -> None:
        self.uid, self.generation = uid, generation

    @property
    def behind(self) -> bool:
        """The version last seen is older than one an event already named."""
        return self._newest_uid == self.uid and self._newest > self.generation

    def notify(self, ev: ChangeEvent | None) -> None:
        """Wake on ``ev`` if it may have changed the spec (None: always)."""
        if ev is not None:
            mark = math.inf if ev.type == "DELETED" else float(ev.generation)
            if ev.uid != self._newest_uid:
                self._newest_uid, self._newest = ev.uid, mark
            else:
                self._newest = max(self._newest, mark)
        if (ev is None or ev.type == "DELETED" or not self.uid or ev.uid != self.uid
                or ev.generation > self.generation):
            self._event.set()

    async def wait(self, timeout: float) -> bool:
        """True when woken (now or within ``timeout``), False when the time ran out."""
        if not self._event.is_set():
            try:
                async with asyncio.timeout(timeout):
                    await self._event.wait()
            except TimeoutError:
                return False
        self._event.clear()
        return True


class ChangeHub:
    """Subscription and waiter registry; ``start``/``stop`` like any component."""

    def __init__(
        self, nc: NATS, subject: str, *, on_deleted: Callable[[Key], None] | None = None
    ) -> None:
        self.nc = nc
        self.subject = subject
        self.closed = False
        self._on_deleted = on_deleted
        self._waiters: dict[Key, set[Waiter]] = {}
        self._sub: Any = None

    async def start(self) -> None:
        self.closed = False
        self._sub = await self.nc.subscribe(self.subject, cb=self._on_msg)

    async def stop(self) -> None:
        """Stop listening and wake every waiter, so held requests answer now."""
        self.closed = True
        if self._sub is not None:
            await close_subscription(self._sub)
            self._sub = None
        for waiters in self._waiters.values():
            for w in waiters:
                w.notify(None)

    def waiting(self, key: Key) -> int:
        return len(self._waiters.get(key, ()))

    @contextmanager
    def watch(self, key: Key) -> Iterator[Waiter]:
        """Register a waiter for ``key`` for the block; events from then on reach it."""
        w = Waiter()
        self._waiters.setdefault(key, set()).add(w)
        try:
            yield w
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(w)
                if not waiters:
                    del self._waiters[key]

    async def _on_msg(self, msg: Any) -> None:
        try:
            ev = _decode(msg.data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            log.warning("lcm endpoint: malformed change event on %s", msg.subject)
            return
        key = (ev.namespace or "", ev.name)
        for w in self._waiters.get(key, ()):
            w.notify(ev)
        if ev.type == "DELETED" and self._on_deleted is not None:
            self._on_deleted(key)
