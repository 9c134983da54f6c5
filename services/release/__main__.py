"""``python -m services.release``: release data, mirror and upgrade controllers, mirror HTTP.

Every replica serves the regional mirror over HTTP (``CCLOUD_MIRROR_HOST``/``_PORT``, files
in ``CCLOUD_MIRROR_DIR``, default ``<data_dir>/mirror/<region>``). The leader loads the
default releases if missing and runs the ArtifactMirror controller and the
available-upgrades controller, both for this region only (releases are global: their
events reach every region), and, with ``CCLOUD_MIRROR_PRUNE_INTERVAL`` seconds, prunes the
mirror to the releases in use (``controllers/prune.py``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from services.release.controllers import (
    RELEASE_WATCHES,
    ArtifactMirrorReconciler,
    AvailableUpgradesReconciler,
)
from services.release.controllers.prune import MirrorGuard, MirrorPruner
from services.release.defaults import ensure_default_releases
from services.release.mirror.server import MirrorServer
from shared.models import ArtifactMirror, Cluster
from shared.runtime import Controller
from shared.service import Parts, Runtime, main
from shared.store import Store

log = logging.getLogger(__name__)

PRUNE_INTERVAL_ENV = "CCLOUD_MIRROR_PRUNE_INTERVAL"  # seconds; 0 (default): never prune


class DefaultReleases:
    """Creates the shipped KaaSRelease/ClusterReleases that are missing, once per lead."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def start(self) -> None:
        created = await ensure_default_releases(self.store)
        if created:
            log.info("default releases created: %s", ", ".join(created))

    async def stop(self) -> None:
        return None


def seconds(name: str, default: str) -> float:
    raw = os.environ.get(name, default) or default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"invalid {name} {raw!r}: not a number of seconds") from None
    if value < 0:
        raise SystemExit(f"invalid {name} {raw!r}: must not be negative")
    return value


def mirror_dir(rt: Runtime) -> Path:
    default = Path(rt.settings.data_dir) / "mirror" / rt.settings.region
    return Path(os.environ.get("CCLOUD_MIRROR_DIR") or default)


async def build(rt: Runtime) -> Parts:
    directory = mirror_dir(rt)
    directory.mkdir(parents=True, exist_ok=True)
    server = MirrorServer(
        directory,
        host=os.environ.get("CCLOUD_MIRROR_HOST", "127.0.0.1"),
        port=int(os.environ.get("CCLOUD_MIRROR_PORT", "0")),
    )
    pruner = MirrorPruner(rt.store, directory, region=rt.settings.region,
                          interval=seconds(PRUNE_INTERVAL_ENV, "0"), guard=MirrorGuard())
    mirrors = Controller(
        name="release-artifactmirror",
        kind=ArtifactMirror,
        reconciler=ArtifactMirrorReconciler(rt.store, directory, pruner=pruner),
        store=rt.store,
        bus=rt.bus,
        region=rt.settings.region,
        workers=2,
    )
    upgrades = Controller(
        name="release-upgrades",
        kind=Cluster,
        reconciler=AvailableUpgradesReconciler(rt.store, region=rt.settings.region),
        store=rt.store,
        bus=rt.bus,
        region=rt.settings.region,
        watches=list(RELEASE_WATCHES),
    )
    return Parts(always=[server],
                 leader=[DefaultReleases(rt.store), mirrors, upgrades, pruner])


if __name__ == "__main__":
    main("release", build)
