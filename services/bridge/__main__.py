"""``python -m services.bridge``: the store -> bus event publisher and the owner GC.

``CCLOUD_GC_SWEEP_SECONDS`` (default 300) sets how often the owner GC sweeps the whole
store besides the sweeps delete events trigger (see ``services.bridge.gc``).
"""

from __future__ import annotations

import os

from services.bridge.gc import DEFAULT_SWEEP_SECONDS, GarbageCollector, store_for_sweeps
from services.bridge.publisher import EventPublisher
from services.bridge.sweep import AnnouncedSweep
from shared.service import Parts, Runtime, main
from shared.store.kv import KVStore


def sweep_interval() -> float:
    raw = os.environ.get("CCLOUD_GC_SWEEP_SECONDS", "")
    try:
        value = float(raw) if raw else DEFAULT_SWEEP_SECONDS
    except ValueError:
        raise SystemExit(f"invalid CCLOUD_GC_SWEEP_SECONDS {raw!r}: not a number") from None
    if not value > 0:
        raise SystemExit(f"invalid CCLOUD_GC_SWEEP_SECONDS {raw!r}: must be positive")
    return value


async def build(rt: Runtime) -> Parts:
    checkpoints = f"{rt.settings.prefix}-bridge"
    # Writers to the embedded store announce their own events: the bridge only looks for
    # the writes of one that died. On Kubernetes it is the only publisher.
    publisher: AnnouncedSweep | EventPublisher = (
        AnnouncedSweep(rt.store, rt.bus, rt.nc, checkpoint_bucket=checkpoints)
        if isinstance(rt.store, KVStore)
        else EventPublisher(rt.store, rt.bus, rt.nc, checkpoint_bucket=checkpoints))
    gc = GarbageCollector(await store_for_sweeps(rt.store), rt.bus,
                          sweep_interval=sweep_interval())
    return Parts(leader=[publisher, gc])


if __name__ == "__main__":
    sweep_interval()  # a bad setting stops here, before anything connects
    main("bridge", build)
