"""``python -m services.attach``: the AttachedCluster controller of this service's region.

The leader reconciles the AttachedClusters whose ``spec.region`` is ``CCLOUD_REGION``;
``CCLOUD_ATTACH_PROBE_TIMEOUT`` (seconds, default 10) bounds each API request of a probe.
"""

from __future__ import annotations

import os

from services.attach.probe import DEFAULT_TIMEOUT
from services.attach.reconciler import AttachedClusterReconciler
from shared.models import AttachedCluster
from shared.runtime import Controller
from shared.service import Build, Parts, Runtime, main


def probe_timeout() -> float:
    raw = os.environ.get("CCLOUD_ATTACH_PROBE_TIMEOUT", "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        raise SystemExit(f"invalid CCLOUD_ATTACH_PROBE_TIMEOUT {raw!r}: not a number") from None
    if value <= 0:
        raise SystemExit(f"invalid CCLOUD_ATTACH_PROBE_TIMEOUT {raw!r}: must be positive")
    return value


def controller(rt: Runtime, reconciler: AttachedClusterReconciler) -> Controller:
    return Controller(
        name="attach-attachedcluster",
        kind=AttachedCluster,
        reconciler=reconciler,
        store=rt.store,
        bus=rt.bus,
        region=rt.settings.region,
        workers=4,
    )


def make_build(timeout: float = DEFAULT_TIMEOUT) -> Build:
    async def build(rt: Runtime) -> Parts:
        reconciler = AttachedClusterReconciler(
            rt.store, region=rt.settings.region, probe_timeout=timeout
        )
        return Parts(leader=[controller(rt, reconciler)])

    return build


build = make_build()


if __name__ == "__main__":
    main("attach", make_build(probe_timeout()))  # settings are checked before connecting
