"""ArtifactMirror reconciler: copies a release's artifacts into this region's mirror.

One pass runs the copier for the mirror's ClusterRelease. While it runs, progress (items
and bytes) is written to status at most every ``progress_interval`` seconds; at the end
status gets the totals, one failure entry per failed artifact, ``Ready`` and
``observedGeneration``. Failed artifacts are retried after ``retry_interval``; a mirror
that is Ready for its current generation is left alone (the copier would only re-verify).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from pathlib import Path

from services.release.controllers.prune import MirrorGuard, MirrorPruner
from services.release.mirror.copier import Copier, Progress
from shared.models import ArtifactFailure, ArtifactMirror, ClusterRelease, now
from shared.runtime import Request, Result, TransientError, status_writer, write_status
from shared.runtime import conditions as cond
from shared.store import NotFound, Store

log = logging.getLogger(__name__)

MIRRORED = "Mirrored"
PHASE_MIRRORING = "Mirroring"
PHASE_READY = "Ready"
PHASE_FAILED = "Failed"
REASON_COPYING = "Copying"
REASON_FAILED = "ArtifactsFailed"
REASON_NO_RELEASE = "ReleaseNotFound"
REASON_DONE = "AllArtifactsMirrored"


def _apply(mirror: ArtifactMirror, p: Progress) -> None:
    st = mirror.status
    st.items_total, st.items_done = p.items_total, p.items_done
    st.bytes_total, st.bytes_done = p.bytes_total, p.bytes_done
    st.failures = [ArtifactFailure(artifact=a, reason=r) for a, r in sorted(p.failures.items())]


class ArtifactMirrorReconciler:
    def __init__(
        self,
        store: Store,
        mirror_dir: Path,
        *,
        progress_interval: float = 1.0,
        retry_interval: float = 60.0,
        pruner: MirrorPruner | None = None,
    ) -> None:
        self.store = store
        self.mirror_dir = Path(mirror_dir)
        self.progress_interval = progress_interval
        self.retry_interval = retry_interval
        self.pruner = pruner
        self.guard = pruner.guard if pruner is not None else MirrorGuard()

    async def reconcile(self, req: Request) -> Result:
        try:
            mirror = await self.store.get(ArtifactMirror, req.name, req.namespace)
        except NotFound:
            if self.pruner is not None:  # what only it needed may go now
                self.pruner.request()
            raise
        if mirror.deleting:
            return Result.done()  # its files stay until a prune pass finds them unused
        st = mirror.status
        if st.observed_generation == mirror.metadata.generation:
            if cond.is_true(st, cond.READY):
                return Result.done()
            # Our own status writes come back as events: retry failures on schedule only.
            wait = self._retry_wait(st.last_attempt_time)
            if wait > 0:
                return Result(requeue_after=wait)
        try:
            release = await self.store.get(ClusterRelease, mirror.spec.release)
        except NotFound:
            async with status_writer(self.store, mirror):
                cond.mark_false(st, MIRRORED, REASON_NO_RELEASE,
                                f"ClusterRelease {mirror.spec.release} does not exist", "Error")
                cond.summarize(st, [MIRRORED])
                st.phase = PHASE_FAILED
            raise TransientError(f"ClusterRelease {mirror.spec.release} not found",
                                 delay=self.retry_interval) from None
        return await self._copy(mirror, release)

    def _retry_wait(self, last_attempt: str) -> float:
        try:
            started = dt.datetime.strptime(last_attempt, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return 0.0
        elapsed = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - started).total_seconds()
        return max(0.0, self.retry_interval - elapsed)

    async def _copy(self, mirror: ArtifactMirror, release: ClusterRelease) -> Result:
        st = mirror.status
        st.phase = PHASE_MIRRORING
        st.last_attempt_time = now()
        cond.mark_false(st, MIRRORED, REASON_COPYING,
                        f"copying release {release.metadata.name}", "Info")
        cond.summarize(st, [MIRRORED])
        latest: list[Progress] = []
        changed = asyncio.Event()

        def on_progress(p: Progress) -> None:
            latest[:] = [p]
            changed.set()

        copier = Copier(
            release,
            mirror.spec.upstreams,
            self.mirror_dir,
            parallelism=mirror.spec.parallelism,
            on_progress=on_progress,
        )
        mirror = await write_status(self.store, mirror)
        stop = asyncio.Event()
        writer = asyncio.create_task(self._write_progress(mirror, latest, changed, stop))
        try:
            async with self.guard.copying():
                result = await copier.run()
        finally:
            # Asked, not cancelled: a cancelled write can still land later, and a
            # cancellation can be lost (3.11's wait_for returns a result that raced it),
            # which left the writer waiting forever and the pass never finished.
            stop.set()
            changed.set()
            await writer
        return await self._finish(mirror, release, result)

    async def _write_progress(
        self,
        mirror: ArtifactMirror,
        latest: list[Progress],
        changed: asyncio.Event,
        stop: asyncio.Event,
    ) -> None:
        """Persist progress while the copy runs, at most once per ``progress_interval``."""
        last = 0.0
        while True:
            await changed.wait()
            delay = last + self.progress_interval - time.monotonic()
            if delay > 0 and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await stop.wait()
            if stop.is_set():
                return  # the pass writes the final status itself
            changed.clear()
            _apply(mirror, latest[0])
            try:
                mirror = await write_status(self.store, mirror)
            except NotFound:
                return
            except Exception as e:  # progress is best effort; the final write is not
                log.info("progress write for %s failed: %s", mirror.metadata.name, e)
            last = time.monotonic()

    async def _finish(
        self, mirror: ArtifactMirror, release: ClusterRelease, result: Progress
    ) -> Result:
        try:
            fresh = await self.store.get(ArtifactMirror, mirror.metadata.name,
                                         mirror.metadata.namespace)
        except NotFound:
            return Result.done()
        fresh.status = mirror.status
        st = fresh.status
        _apply(fresh, result)
        name = release.metadata.name
        if result.failures:
            n = len(result.failures)
            cond.mark_false(
                st, MIRRORED, REASON_FAILED,
                f"{n} of {result.items_total} artifacts of {name} failed; see status.failures",
                "Error",
            )
            st.phase = PHASE_FAILED
        else:
            cond.mark_true(st, MIRRORED, REASON_DONE,
                           f"{result.items_total} artifacts of {name} mirrored")
            st.phase = PHASE_READY
            if self.pruner is not None:  # a mirror moved to another release, say
                self.pruner.request()
        cond.summarize(st, [MIRRORED])
        # Only a copy of the generation we started from counts as observed.
        if fresh.metadata.generation == mirror.metadata.generation:
            st.observed_generation = fresh.metadata.generation
        await write_status(self.store, fresh)
        if fresh.metadata.generation != mirror.metadata.generation:
            return Result(requeue_after=0.0)
        return Result(requeue_after=self.retry_interval) if result.failures else Result.done()
