"""Copies exactly a release's artifacts from upstream CDNs into a regional mirror directory.

Per file: skip it when already present and verified; otherwise download into
``<dest>.part`` (kept across crashes and resumed with an HTTP ``Range`` request), check the
sha256 (and size), then atomically rename into place. Files shared by several artifacts
(image layers) are fetched once. At most ``parallelism`` downloads run at a time.

Per artifact: resolve it with the reader of its format, copy its files, then write its
record. A failure (checksum mismatch naming expected and actual, HTTP error naming the URL)
is recorded for that artifact and the others carry on. Progress (items and bytes, done and
total) is pushed to a callback after every change; callers throttle what they persist.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from services.release.mirror.debian import DebianReader
from services.release.mirror.errors import ChecksumMismatch, FetchError, MirrorError
from services.release.mirror.helm import HelmReader
from services.release.mirror.layout import FileRef, LayoutError, MirrorDir, label, sha256_file
from services.release.mirror.oci import OCIReader
from services.release.mirror.resolve import Reader, RemoteFile, Resolved
from shared.models import Artifact, ClusterRelease, Upstream

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
MAX_ATTEMPTS = 4
RETRY_DELAY = 0.2
UPSTREAM_FOR = {"deb": "debian", "helm": "helm", "binary": "helm", "image": "oci"}


@dataclass
class Progress:
    items_total: int = 0
    items_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.items_done + len(self.failures) >= self.items_total


ProgressCallback = Callable[[Progress], None]


@dataclass
class _FileState:
    size: int | None
    done: int = 0


class Copier:
    """One copy run of a release into a mirror directory; use ``run()`` once."""

    def __init__(
        self,
        release: ClusterRelease,
        upstreams: list[Upstream],
        mirror_dir: Path,
        *,
        parallelism: int = 4,
        on_progress: ProgressCallback | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self.release = release
        self.upstreams = upstreams
        self.mirror = MirrorDir(mirror_dir)
        self.sem = asyncio.Semaphore(max(1, parallelism))
        self.on_progress = on_progress
        self.progress = Progress(items_total=len(release.spec.artifacts))
        self._session = session
        self._own_session = session is None
        self._timeout = timeout or aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
        self._inflight: dict[str, asyncio.Future[FileRef]] = {}
        self._files: dict[str, _FileState] = {}
        self._readers: dict[str, Reader] = {}

    # --- progress ---------------------------------------------------------------------

    def _notify(self) -> None:
        if self.on_progress is not None:
            try:
                self.on_progress(self.progress)
            except Exception:  # a broken callback must not break the copy
                log.exception("progress callback failed")

    def _track(self, path: str, size: int | None) -> _FileState:
        st = self._files.get(path)
        if st is None:
            st = self._files[path] = _FileState(size=size)
            if size is not None:
                self.progress.bytes_total += size
        elif st.size is None and size is not None:
            st.size = size
            self.progress.bytes_total += size
        return st

    def _set_done(self, st: _FileState, done: int) -> None:
        self.progress.bytes_done += done - st.done
        st.done = done
        self._notify()

    # --- readers ----------------------------------------------------------------------

    def _reader(self, artifact: Artifact) -> Reader:
        kind = UPSTREAM_FOR[artifact.type]
        reader = self._readers.get(kind)
        if reader is not None:
            return reader
        upstream = next((u for u in self.upstreams if u.type == kind), None)
        if upstream is None:
            raise MirrorError(f"no {kind} upstream configured for {label(artifact)}")
        assert self._session is not None
        cls = {"debian": DebianReader, "helm": HelmReader, "oci": OCIReader}[kind]
        reader = self._readers[kind] = cls(self._session, upstream)
        return reader

    # --- run --------------------------------------------------------------------------

    async def run(self) -> Progress:
        """Copy every artifact; return the final progress (failures keyed by artifact)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=False)
        try:
            self._notify()
            async with asyncio.TaskGroup() as tg:
                for artifact in self.release.spec.artifacts:
                    tg.create_task(self._artifact(artifact))
            return self.progress
        finally:
            # Shared file downloads are shielded from each artifact; stop them with the run.
            pending = [f for f in self._inflight.values() if not f.done()]
            for fut in pending:
                fut.cancel()
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)
            if self._own_session:
                await self._session.close()

    async def _artifact(self, artifact: Artifact) -> None:
        name = label(artifact)
        try:
            if not await self._already_mirrored(artifact):
                async with self.sem:
                    resolved = await self._reader(artifact).resolve(artifact)
                await self._copy(resolved)
            self.progress.items_done += 1
        except asyncio.CancelledError:
            raise
        except (MirrorError, LayoutError) as e:
            self.progress.failures[name] = str(e)
            log.warning("mirror of %s failed: %s", name, e)
        except Exception as e:  # unexpected: still one artifact's failure, not the run's
            self.progress.failures[name] = f"unexpected error: {e.__class__.__name__}: {e}"
            log.exception("mirror of %s failed", name)
        self._notify()

    async def _already_mirrored(self, artifact: Artifact) -> bool:
        """A record whose files all verify means nothing to fetch, not even indexes."""
        record = self.mirror.read_record(artifact)
        if record is None or not record.files:
            return False
        if artifact.sha256:
            pin = artifact.sha256.removeprefix("sha256:").lower()
            if artifact.type == "image":
                if record.digest != f"sha256:{pin}":
                    return False
            elif record.files[0].sha256 != pin:
                return False
        for ref in record.files:
            if not await asyncio.to_thread(self.mirror.verified, ref):
                return False
        for ref in record.files:
            st = self._track(ref.path, ref.size)
            self._set_done(st, ref.size)
        return True

    async def _copy(self, resolved: Resolved) -> None:
        refs = await asyncio.gather(*(self._file(f) for f in resolved.files))
        resolved.record.files = list(refs)
        await asyncio.to_thread(self.mirror.write_record, resolved.record)

    async def _file(self, f: RemoteFile) -> FileRef:
        fut = self._inflight.get(f.path)
        if fut is None:
            fut = self._inflight[f.path] = asyncio.ensure_future(self._fetch_once(f))
        return await asyncio.shield(fut)

    async def _fetch_once(self, f: RemoteFile) -> FileRef:
        dest = self.mirror.path(f.path)
        st = self._track(f.path, f.size)
        if await asyncio.to_thread(_verify_existing, dest, f.sha256):
            size = dest.stat().st_size
            self._track(f.path, size)
            self._set_done(st, size)
            return FileRef(path=f.path, sha256=f.sha256, size=size)
        if f.data is not None:
            actual = hashlib.sha256(f.data).hexdigest()
            if actual != f.sha256:
                raise ChecksumMismatch(f.url, expected=f.sha256, actual=actual)
            await asyncio.to_thread(self.mirror.write_atomic, dest, f.data)
            self._track(f.path, len(f.data))
            self._set_done(st, len(f.data))
            return FileRef(path=f.path, sha256=f.sha256, size=len(f.data))
        async with self.sem:
            size = await self._download(f, dest, st)
        return FileRef(path=f.path, sha256=f.sha256, size=size)

    async def _download(self, f: RemoteFile, dest: Path, st: _FileState) -> int:
        part = dest.with_name(dest.name + ".part")
        dest.parent.mkdir(parents=True, exist_ok=True)
        last_error = ""
        from_scratch_once = False
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                await asyncio.sleep(RETRY_DELAY * attempt)
            hasher, offset = await asyncio.to_thread(_hash_prefix, part)
            if f.size is not None and offset > f.size:
                part.unlink()
                hasher, offset = hashlib.sha256(), 0
            resumed = offset > 0
            try:
                hasher = await self._stream(f, part, hasher, offset, st)
            except _RangeRejected:
                part.unlink(missing_ok=True)
                continue
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as e:
                last_error = f"{e.__class__.__name__}: {e}" if str(e) else e.__class__.__name__
                log.info("download of %s interrupted (%s); will resume", f.url, last_error)
                continue
            actual = hasher.hexdigest()
            size = part.stat().st_size
            if actual != f.sha256 or (f.size is not None and size != f.size):
                part.unlink(missing_ok=True)
                self._set_done(st, 0)
                if resumed and not from_scratch_once:
                    # The kept prefix may be what is wrong: one more try from byte zero.
                    from_scratch_once = True
                    continue
                raise ChecksumMismatch(f.url, expected=f.sha256, actual=actual)
            os.replace(part, dest)
            return size
        raise FetchError(f.url, f"download interrupted {MAX_ATTEMPTS} times ({last_error})")

    async def _stream(
        self, f: RemoteFile, part: Path, hasher: hashlib._Hash, offset: int, st: _FileState
    ) -> hashlib._Hash:
        """Write the response into ``part``; return the hasher covering the whole file."""
        assert self._session is not None
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        async with self._session.get(f.url, headers=headers) as resp:
            if resp.status == 416 and offset:
                raise _RangeRejected()
            if resp.status == 206 and offset:
                start = _content_range_start(resp.headers.get("Content-Range", ""))
                if start != offset:
                    raise _RangeRejected()
                mode = "ab"
            elif resp.status == 200:
                # No Range, or the upstream ignored it and sent the whole file.
                hasher, offset, mode = hashlib.sha256(), 0, "wb"
            else:
                raise FetchError(
                    f.url, f"HTTP {resp.status} {resp.reason or ''}".strip(), status=resp.status
                )
            if resp.content_length is not None:
                self._track(f.path, offset + resp.content_length)
            self._set_done(st, offset)
            done = offset
            with part.open(mode) as out:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    out.write(chunk)
                    out.flush()
                    hasher.update(chunk)
                    done += len(chunk)
                    self._set_done(st, done)
            if resp.content_length is not None and done != offset + resp.content_length:
                raise aiohttp.ClientPayloadError(
                    f"connection closed after {done - offset} of {resp.content_length} bytes"
                )
        return hasher


class _RangeRejected(Exception):
    """The upstream refused or garbled our Range request: restart the file from zero."""


def _content_range_start(value: str) -> int | None:
    # "bytes 100-199/200"
    try:
        unit, _, rest = value.partition(" ")
        if unit != "bytes":
            return None
        return int(rest.split("-", 1)[0])
    except ValueError:
        return None


def _hash_prefix(part: Path) -> tuple[hashlib._Hash, int]:
    h = hashlib.sha256()
    n = 0
    try:
        with part.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                n += len(chunk)
    except FileNotFoundError:
        pass
    return h, n


def _verify_existing(dest: Path, sha: str) -> bool:
    try:
        return dest.is_file() and sha256_file(dest) == sha
    except OSError:
        return False


async def mirror_release(
    release: ClusterRelease,
    upstreams: list[Upstream],
    mirror_dir: Path,
    *,
    parallelism: int = 4,
    on_progress: ProgressCallback | None = None,
) -> Progress:
    """Copy the artifacts ``release`` needs into ``mirror_dir``; see the module docstring."""
    copier = Copier(
        release, upstreams, mirror_dir, parallelism=parallelism, on_progress=on_progress
    )
    return await copier.run()
