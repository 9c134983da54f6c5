"""One durable consumer per kind and region scope in a process, shared by its listeners.

Every controller used to hold a durable consumer of its own for its kind and one for each
kind it watches: LCM's five controllers that watch Machines each received, decoded and
acknowledged every Machine event, five deliveries and five acks for one write. As
controller-runtime shares one informer per kind among a manager's controllers, a process
here shares one consumer per (kind, scope): each event comes once and is handed to every
listener that wants its region, then acknowledged once. Listeners only queue work, so one
cannot hold up the others; if one fails the event is nak'ed and comes again to all of
them, which their idempotence (queueing a key twice is queueing it once) absorbs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.bus.events import ChangeEvent, subject
from shared.models import GLOBAL_REGION

if TYPE_CHECKING:
    from shared.bus.bus import Bus, Consumer

Handler = Callable[[ChangeEvent], Awaitable[None]]


@dataclass(eq=False)
class Listener:
    """One handler's share of a fan-out; ``stop`` withdraws it (the last one out stops
    the consumer)."""

    fanout: Fanout
    handler: Handler
    regions: frozenset[str] | None  # None: every region

    def wants(self, event: ChangeEvent) -> bool:
        return self.regions is None or event.region in self.regions

    async def stop(self) -> None:
        await self.fanout.remove(self)


@dataclass(eq=False)
class Fanout:
    bus: Bus
    durable: str
    subjects: list[str]
    listeners: list[Listener] = field(default_factory=list)
    consumer: Consumer | None = None

    async def dispatch(self, event: ChangeEvent) -> None:
        failed: BaseException | None = None
        for listener in tuple(self.listeners):
            if not listener.wants(event):
                continue
            try:
                await listener.handler(event)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the others still hear it; the nak brings it again
                failed = e
        if failed is not None:
            raise failed

    async def remove(self, listener: Listener) -> None:
        async with self.bus.fanout_lock:
            if listener not in self.listeners:
                return
            self.listeners.remove(listener)
            if self.listeners or self.consumer is None:
                return
            consumer, self.consumer = self.consumer, None
            self.bus.fanouts.pop(self.durable, None)
            await self.bus.release(consumer)  # before a new listener starts one on the durable


def scope(prefix: str, kind: str, region: str | None) -> tuple[str, list[str]]:
    """The durable name's region part and the subjects of the fan-out for ``kind`` as
    heard from ``region`` (None: every region): a regional process also hears global
    objects (releases), so its fan-out takes both and each listener picks."""
    if region is None:
        return "all", [subject(prefix, "*", kind)]
    if region == GLOBAL_REGION:
        return region, [subject(prefix, region, kind)]
    return region, [subject(prefix, region, kind), subject(prefix, GLOBAL_REGION, kind)]
