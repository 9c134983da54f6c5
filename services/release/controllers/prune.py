"""The region's mirror pruned to the releases in use (``CCLOUD_MIRROR_PRUNE_INTERVAL``).

In use: the releases this region's ArtifactMirrors name and those its clusters run or are
moving to. Off by default (interval 0): an air-gapped region whose artifacts came from a
bundle, with no ArtifactMirror naming them, would otherwise lose its only copy - turn it
on once every release the region needs has an ArtifactMirror. A pass runs every interval,
and a few seconds after a mirror finishes or goes (``request``). Copies do not run while a
pass does (``MirrorGuard``): a pass never sees a copy's files without their record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from prometheus_client import Counter

from services.release.mirror import prune
from services.release.mirror.layout import MirrorDir
from shared.models import ArtifactMirror, Cluster, ClusterRelease
from shared.store import NotFound, Store
from shared.tasks import cancel_all

log = logging.getLogger(__name__)

PRUNED_FILES = Counter("ccloud_mirror_pruned_files_total", "Files pruned from the mirror")
PRUNED_BYTES = Counter("ccloud_mirror_pruned_bytes_total", "Bytes pruned from the mirror")
PRUNE_SKIPPED = Counter("ccloud_mirror_prune_skipped_total",
                        "Prune passes skipped because a release in use could not be read")
DEBOUNCE = 5.0


class MirrorGuard:
    """Copies run side by side; a prune pass runs alone."""

    def __init__(self) -> None:
        self._copies = 0
        self._pruning = False
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def copying(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._pruning)
            self._copies += 1
        try:
            yield
        finally:
            async with self._changed:
                self._copies -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def pruning(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._copies and not self._pruning)
            self._pruning = True
        try:
            yield
        finally:
            async with self._changed:
                self._pruning = False
                self._changed.notify_all()


class MirrorPruner:
    def __init__(self, store: Store, mirror_dir: Path, *, region: str, interval: float,
                 guard: MirrorGuard, grace: float = prune.DEFAULT_GRACE) -> None:
        self.store = store
        self.mirror = MirrorDir(mirror_dir)
        self.region = region
        self.interval = interval
        self.guard = guard
        self.grace = grace
        self._asked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def request(self) -> None:
        """A mirror finished or went: prune soon rather than at the next interval."""
        self._asked.set()

    async def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._loop(), name="mirror-prune")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_all([self._task])

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._asked.wait()
                    await asyncio.sleep(DEBOUNCE)  # one pass for a burst of deletions
            self._asked.clear()
            try:
                await self.run_once()
            except Exception as e:  # the next pass tries again; never the whole service
                log.warning("mirror prune pass failed: %s", e)

    async def in_use(self) -> set[prune.Key] | None:
        """The artifacts of the releases in use here, None when one cannot be read."""
        names: dict[str, str] = {}
        for m in await self.store.list_all(ArtifactMirror):
            if m.region() == self.region and not m.deleting:
                names.setdefault(m.spec.release, f"ArtifactMirror {m.metadata.name}")
        for c in await self.store.list_all(Cluster):
            if c.region() == self.region:
                for release in (c.spec.release, c.status.release):
                    if release:
                        names.setdefault(release, f"Cluster {c.metadata.name}")
        releases = []
        for name, user in sorted(names.items()):
            try:
                releases.append(await self.store.get(ClusterRelease, name))
            except NotFound:
                PRUNE_SKIPPED.inc()
                log.warning("mirror not pruned: %s names release %s, which does not exist, "
                            "so what it needs is unknown", user, name)
                return None
        return prune.wanted(releases)

    async def run_once(self) -> prune.PrunePlan | None:
        keep = await self.in_use()
        if keep is None:
            return None
        async with self.guard.pruning():
            todo = await asyncio.to_thread(prune.plan, self.mirror, keep, grace=self.grace)
            await asyncio.to_thread(prune.apply, self.mirror, todo)
        if todo.records or todo.files:
            PRUNED_FILES.inc(len(todo.files))
            PRUNED_BYTES.inc(todo.bytes)
            log.info("mirror pruned: %s (%s)", todo.summary(), ", ".join(todo.names) or "-")
        return todo
