"""``python -m services.bridge``: the store -> bus event publisher and the owner GC."""

from __future__ import annotations

from services.bridge.gc import GarbageCollector
from services.bridge.publisher import EventPublisher
from shared.service import Parts, Runtime, main


async def build(rt: Runtime) -> Parts:
    publisher = EventPublisher(
        rt.store, rt.bus, rt.nc, checkpoint_bucket=f"{rt.settings.prefix}-bridge"
    )
    return Parts(leader=[publisher, GarbageCollector(rt.store, rt.bus)])


if __name__ == "__main__":
    main("bridge", build)
