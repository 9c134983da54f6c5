"""Debian repository reader: ``dists/<suite>/Release`` -> ``Packages`` -> ``pool/`` files.

The chain of trust is the one apt uses: the Release file lists the SHA256 and size of each
``Packages`` index, every Packages stanza lists the ``Filename``, ``Size`` and ``SHA256`` of
its .deb. Release signatures are not checked here (no keyring is shipped); the hashes are.
Also holds the deb822 parser/writer the regional server uses to regenerate indexes.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib

import aiohttp

from services.release.mirror.errors import BadUpstreamData, ChecksumMismatch, NotInUpstream
from services.release.mirror.layout import FileRef, Record, normalize_sha, safe_relpath
from services.release.mirror.resolve import RemoteFile, Resolved, fetch_bytes, join
from shared.models import Artifact, Upstream

Stanza = dict[str, str]


def parse_deb822(text: str) -> list[Stanza]:
    """Paragraphs of ``Field: value`` lines; continuation lines start with a space."""
    out: list[Stanza] = []
    cur: Stanza = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if cur:
                out.append(cur)
            cur, last = {}, ""
            continue
        if line[0] in " \t":
            if not last:
                raise BadUpstreamData(f"continuation line before any field: {line!r}")
            cur[last] += "\n" + line.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise BadUpstreamData(f"malformed deb822 line: {line!r}")
        last = key.strip()
        cur[last] = value.strip()
    if cur:
        out.append(cur)
    return out


def format_stanza(stanza: Stanza) -> str:
    lines = []
    for key, value in stanza.items():
        first, *rest = value.split("\n")
        lines.append(f"{key}: {first}".rstrip())
        lines.extend(f" {r}" for r in rest)
    return "\n".join(lines) + "\n"


def release_hashes(release: Stanza) -> dict[str, tuple[str, int]]:
    """The SHA256 section of a Release file: path -> (sha256, size)."""
    out: dict[str, tuple[str, int]] = {}
    for line in release.get("SHA256", "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            out[parts[2]] = (parts[0].lower(), int(parts[1]))
    return out



class DebianReader:
    """Resolves deb artifacts against one Debian upstream; indexes are fetched once."""

    def __init__(self, session: aiohttp.ClientSession, upstream: Upstream) -> None:
        self.session = session
        self.upstream = upstream
        self.base = upstream.url.rstrip("/")
        self._packages: dict[tuple[str, str], Stanza] | None = None
        self._lock = asyncio.Lock()
        self._error: Exception | None = None

    @property
    def index_path(self) -> str:
        u = self.upstream
        return f"{u.component}/binary-{u.architecture}/Packages"

    async def _load(self) -> dict[tuple[str, str], Stanza]:
        async with self._lock:
            if self._error is not None:
                raise self._error
            if self._packages is None:
                try:
                    self._packages = await self._fetch_index()
                except Exception as e:
                    self._error = e
                    raise
            return self._packages

    async def _fetch_index(self) -> dict[tuple[str, str], Stanza]:
        dist = f"{self.base}/dists/{self.upstream.suite}"
        raw, _ = await fetch_bytes(self.session, f"{dist}/Release")
        paragraphs = parse_deb822(raw.decode("utf-8", "replace"))
        if not paragraphs:
            raise BadUpstreamData(f"{dist}/Release is empty")
        hashes = release_hashes(paragraphs[0])
        if self.index_path in hashes:
            rel = self.index_path
            body, _ = await fetch_bytes(self.session, f"{dist}/{rel}")
        elif f"{self.index_path}.gz" in hashes:
            rel = f"{self.index_path}.gz"
            body, _ = await fetch_bytes(self.session, f"{dist}/{rel}")
        else:
            raise NotInUpstream(f"{dist}/Release does not list {self.index_path}")
        sha, size = hashes[rel]
        actual = hashlib.sha256(body).hexdigest()
        if actual != sha or len(body) != size:
            raise ChecksumMismatch(
                f"{dist}/{rel} (index listed in Release)", expected=sha, actual=actual
            )
        text = (gzip.decompress(body) if rel.endswith(".gz") else body).decode("utf-8", "replace")
        index: dict[tuple[str, str], Stanza] = {}
        arch_ok = {self.upstream.architecture, "all"}
        for st in parse_deb822(text):
            if "Package" in st and "Version" in st and st.get("Architecture", "all") in arch_ok:
                index[(st["Package"], st["Version"])] = st
        return index

    async def resolve(self, artifact: Artifact) -> Resolved:
        index = await self._load()
        stanza = index.get((artifact.name, artifact.version))
        if stanza is None:
            where = f"{self.base}/dists/{self.upstream.suite}/{self.index_path}"
            versions = sorted(v for (n, v) in index if n == artifact.name)
            known = f" (versions there: {', '.join(versions)})" if versions else ""
            raise NotInUpstream(
                f"package {artifact.name} version {artifact.version} not in {where}{known}"
            )
        try:
            filename = safe_relpath(stanza["Filename"])
            sha = stanza["SHA256"].lower()
            size = int(stanza["Size"])
        except (KeyError, ValueError) as e:
            raise BadUpstreamData(
                f"stanza of {artifact.name} {artifact.version} lacks Filename/Size/SHA256: {e}"
            ) from None
        if artifact.sha256 and normalize_sha(artifact.sha256) != sha:
            raise ChecksumMismatch(
                f"{artifact.name} {artifact.version} (release pin vs upstream Packages)",
                expected=normalize_sha(artifact.sha256),
                actual=sha,
            )
        path = f"debian/{filename}"
        record = Record(
            type="deb",
            name=artifact.name,
            version=artifact.version,
            files=[FileRef(path=path, sha256=sha, size=size)],
            stanza=format_stanza(stanza),
            suite=self.upstream.suite,
            component=self.upstream.component,
            architecture=self.upstream.architecture,
        )
        url = join(self.base, filename)
        return Resolved(artifact, [RemoteFile(url=url, path=path, sha256=sha, size=size)], record)
