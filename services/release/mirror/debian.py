"""Debian repository reader: ``dists/<suite>/Release`` -> ``Packages`` -> ``pool/`` files.

The chain of trust is the one apt uses: the Release file lists the SHA256 and size of each
``Packages`` index, every Packages stanza lists the ``Filename``, ``Size`` and ``SHA256`` of
its .deb; all of those hashes are checked.

Signatures: when the upstream publishes ``InRelease`` (clearsigned) and/or
``Release.gpg`` (detached), they are copied with the ``Release`` and the ``Packages`` index
it lists into ``debian/upstream/<suite>/<snapshot>/``, so whoever holds the vendor's key can
check the whole chain offline again (``gpgv`` on InRelease, then the Packages hash, then
each .deb hash). InRelease must sign exactly the Release text fetched (a mismatched pair
fails every deb artifact with that reason) and Release.gpg must be OpenPGP data. With the
upstream's ``signedBy`` (the vendor's public keys, as apt's Signed-By) the copier also
verifies them, as apt does, with ``gpgv`` (``services.release.mirror.openpgp``): at least
one must be published and each published one must verify, or no package of that upstream
is mirrored. Without ``signedBy`` the sha256 chain alone holds, from whatever served the
Release. Agents read the indexes the regional server regenerates (unsigned, listing only
what was mirrored), never these copies: apt would prefer an InRelease next to them.

Also holds the deb822 parser/writer the regional server uses to regenerate indexes.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib

import aiohttp

from services.release.mirror import openpgp
from services.release.mirror.errors import (
    BadSignature,
    BadUpstreamData,
    ChecksumMismatch,
    FetchError,
    NotInUpstream,
)
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



CLEARSIGN_BEGIN = "-----BEGIN PGP SIGNED MESSAGE-----"
SIGNATURE_BEGIN = "-----BEGIN PGP SIGNATURE-----"


def clearsigned_text(doc: str) -> str:
    """The signed text of a clearsigned document (RFC 4880 7.1), dash-escaping undone."""
    lines = doc.replace("\r\n", "\n").split("\n")
    try:
        start = lines.index(CLEARSIGN_BEGIN)
        blank = lines.index("", start)  # armor headers ("Hash: SHA512") end at a blank line
        end = lines.index(SIGNATURE_BEGIN, blank)
    except ValueError:
        raise BadUpstreamData("not a clearsigned document (OpenPGP armor lines missing)") from None
    return "\n".join(ln[2:] if ln.startswith("- ") else ln for ln in lines[blank + 1 : end])


def is_openpgp_signature(data: bytes) -> bool:
    """ASCII-armored signature, or binary OpenPGP packets (first byte has bit 7 set)."""
    return data.lstrip().startswith(SIGNATURE_BEGIN.encode()) or (bool(data) and data[0] >= 0x80)


def check_signatures(dist: str, release: bytes, signatures: list[tuple[str, bytes]]) -> None:
    """Each of InRelease / Release.gpg in ``signatures`` must be OpenPGP data, and InRelease
    must sign exactly ``release`` (``dist`` names them in errors)."""
    for name, doc in signatures:
        if name == "InRelease":
            try:
                text = clearsigned_text(doc.decode("utf-8", "replace"))
            except BadUpstreamData as e:
                raise BadUpstreamData(f"{dist}/InRelease: {e}") from None
            if text.rstrip("\n") != release.decode("utf-8", "replace").replace(
                "\r\n", "\n"
            ).rstrip("\n"):
                raise BadUpstreamData(
                    f"{dist}/InRelease signs a different text than {dist}/Release "
                    "(a half-published upstream?); refusing both"
                )
        elif not is_openpgp_signature(doc):
            raise BadUpstreamData(f"{dist}/{name} is not an OpenPGP signature")


def verify_signatures(dist: str, release: bytes, signatures: list[tuple[str, bytes]],
                      keys: str, *, keys_from: str = "spec signedBy") -> None:
    """At least one signature, and each verifying against ``keys`` (blocking: gpgv)."""
    if not signatures:
        raise BadSignature(f"{dist}: neither InRelease nor Release.gpg is published, and "
                           f"{keys_from} requires a signed Release")
    for name, doc in signatures:
        openpgp.verify(keys, doc, None if name == "InRelease" else release,
                       what=f"{dist}/{name}", keys_from=keys_from)


def verified_packages(snapshot: dict[str, bytes], keys: str, *, where: str,
                      keys_from: str) -> dict[tuple[str, str], str]:
    """(package, version) -> sha256 of the .debs a carried index snapshot (Release, its
    signatures, one Packages index; names relative to ``dists/<suite>``) lists, once the
    whole chain holds: a signature by ``keys`` over the Release, the Release's hash of the
    index. What apt checks against an upstream, for copies read back offline."""
    release = snapshot.get("Release")
    if release is None:
        raise BadUpstreamData(f"{where}: no Release")
    signatures = [(n, snapshot[n]) for n in ("InRelease", "Release.gpg") if n in snapshot]
    check_signatures(where, release, signatures)
    verify_signatures(where, release, signatures, keys, keys_from=keys_from)
    paragraphs = parse_deb822(release.decode("utf-8", "replace"))
    hashes = release_hashes(paragraphs[0]) if paragraphs else {}
    out: dict[tuple[str, str], str] = {}
    for rel, body in snapshot.items():
        if rel in ("Release", "InRelease", "Release.gpg"):
            continue
        for st in index_stanzas(hashes, rel, body, where=where):
            if "Package" in st and "Version" in st and "SHA256" in st:
                out[(st["Package"], st["Version"])] = st["SHA256"].lower()
    return out


def index_stanzas(hashes: dict[str, tuple[str, int]], rel: str, body: bytes, *,
                  where: str) -> list[Stanza]:
    """The stanzas of the Packages index ``rel`` (gzipped if ``.gz``), once ``body`` has
    the sha256 and size the Release's ``hashes`` list for it."""
    sha, size = hashes.get(rel, ("", -1))
    actual = hashlib.sha256(body).hexdigest()
    if actual != sha or len(body) != size:
        raise ChecksumMismatch(f"{where}/{rel} (index listed in Release)",
                               expected=sha or "(not listed)", actual=actual)
    raw = gzip.decompress(body) if rel.endswith(".gz") else body
    return parse_deb822(raw.decode("utf-8", "replace"))


class DebianReader:
    """Resolves deb artifacts against one Debian upstream; indexes are fetched once."""

    def __init__(self, session: aiohttp.ClientSession, upstream: Upstream) -> None:
        self.session = session
        self.upstream = upstream
        self.base = upstream.url.rstrip("/")
        self._packages: dict[tuple[str, str], Stanza] | None = None
        # The upstream's Release (+ InRelease, Release.gpg) and Packages, kept as provenance.
        self._snapshot: list[RemoteFile] = []
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
        signed = await self._signatures(dist, raw)
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
        stanzas = index_stanzas(hashes, rel, body, where=dist)
        self._snapshot = _snapshot(self.upstream.suite, [("Release", raw), *signed],
                                   (rel, body), dist)
        index: dict[tuple[str, str], Stanza] = {}
        arch_ok = {self.upstream.architecture, "all"}
        for st in stanzas:
            if "Package" in st and "Version" in st and st.get("Architecture", "all") in arch_ok:
                index[(st["Package"], st["Version"])] = st
        return index

    async def _optional(self, url: str) -> bytes | None:
        try:
            body, _ = await fetch_bytes(self.session, url)
        except FetchError as e:
            if e.status == 404:
                return None
            raise
        return body

    async def _signatures(self, dist: str, release: bytes) -> list[tuple[str, bytes]]:
        """InRelease and Release.gpg when published; each must belong to ``release``."""
        out: list[tuple[str, bytes]] = []
        for name in ("InRelease", "Release.gpg"):
            if (doc := await self._optional(f"{dist}/{name}")) is not None:
                out.append((name, doc))
        check_signatures(dist, release, out)
        if keys := self.upstream.signed_by:
            await asyncio.to_thread(verify_signatures, dist, release, out, keys)
        return out

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
        # The .deb stays first: bundles and pins check ``files[0]`` against the stanza.
        files = [RemoteFile(url=url, path=path, sha256=sha, size=size), *self._snapshot]
        return Resolved(artifact, files, record)


def _snapshot(
    suite: str, release_files: list[tuple[str, bytes]], packages: tuple[str, bytes], dist: str
) -> list[RemoteFile]:
    """The upstream's index files under a directory named by their content (immutable)."""
    docs = [*release_files, packages]
    snap = hashlib.sha256(b"".join(hashlib.sha256(d).digest() for _, d in docs)).hexdigest()
    base = f"debian/upstream/{safe_relpath(suite)}/{snap[:16]}"
    return [
        RemoteFile(url=f"{dist}/{name}", path=f"{base}/{safe_relpath(name)}",
                   sha256=hashlib.sha256(data).hexdigest(), size=len(data), data=data)
        for name, data in docs
    ]
