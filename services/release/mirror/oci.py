"""OCI / Docker registry v2 reader: tag -> manifest (-> per-platform manifests) -> blobs.

The manifest is fetched with every manifest media type in ``Accept``; its sha256 must equal
the ``Docker-Content-Digest`` header and the release's pin when there is one. An image
index is mirrored whole (every platform), so the mirrored tag means the same thing as
upstream. Manifests are kept as blobs, so the mirror serves them by digest and by tag.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import aiohttp

from services.release.mirror.errors import BadUpstreamData, ChecksumMismatch
from services.release.mirror.layout import Record, normalize_sha
from services.release.mirror.resolve import RemoteFile, Resolved, fetch_bytes
from shared.models import Artifact, Upstream

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join(MANIFEST_TYPES)
MAX_CHILDREN = 64


def blob_path(digest: str) -> str:
    return f"oci/blobs/sha256/{normalize_sha(digest)}"


def _digest_hex(digest: object, where: str) -> str:
    if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
        raise BadUpstreamData(f"{where}: unsupported digest {digest!r} (only sha256)")
    return digest[7:].lower()


class OCIReader:
    """Resolves image artifacts (``name`` = repository, ``version`` = tag) on one registry."""

    def __init__(self, session: aiohttp.ClientSession, upstream: Upstream) -> None:
        self.session = session
        self.base = upstream.url.rstrip("/")

    async def _manifest(self, name: str, ref: str) -> tuple[bytes, str, str, dict[str, Any]]:
        url = f"{self.base}/v2/{name}/manifests/{ref}"
        body, headers = await fetch_bytes(self.session, url, headers={"Accept": ACCEPT})
        actual = hashlib.sha256(body).hexdigest()
        header = headers.get("Docker-Content-Digest", "")
        if header and normalize_sha(header) != actual:
            raise ChecksumMismatch(f"manifest {url}", expected=normalize_sha(header), actual=actual)
        if ref.startswith("sha256:") and normalize_sha(ref) != actual:
            raise ChecksumMismatch(f"manifest {url}", expected=normalize_sha(ref), actual=actual)
        try:
            doc = json.loads(body)
        except ValueError:
            raise BadUpstreamData(f"{url}: manifest is not JSON") from None
        if not isinstance(doc, dict):
            raise BadUpstreamData(f"{url}: manifest is not a JSON object")
        ctype = headers.get("Content-Type", "").split(";")[0].strip()
        media = str(doc.get("mediaType") or ctype)
        if media not in MANIFEST_TYPES:
            raise BadUpstreamData(f"{url}: unsupported manifest media type {media!r}")
        return body, actual, media, doc

    def _blobs(self, name: str, doc: dict[str, Any], where: str) -> list[RemoteFile]:
        descriptors = [doc.get("config")] + list(doc.get("layers") or [])
        files = []
        for d in descriptors:
            if not isinstance(d, dict):
                raise BadUpstreamData(f"{where}: malformed descriptor {d!r}")
            hexd = _digest_hex(d.get("digest"), where)
            size = d.get("size")
            files.append(
                RemoteFile(
                    url=f"{self.base}/v2/{name}/blobs/sha256:{hexd}",
                    path=blob_path(hexd),
                    sha256=hexd,
                    size=int(size) if isinstance(size, int) else None,
                )
            )
        return files

    async def resolve(self, artifact: Artifact) -> Resolved:
        name, tag = artifact.name, artifact.version or "latest"
        body, digest, media, doc = await self._manifest(name, tag)
        if artifact.sha256 and normalize_sha(artifact.sha256) != digest:
            raise ChecksumMismatch(
                f"image {name}:{tag} (release pin vs registry manifest digest)",
                expected=normalize_sha(artifact.sha256),
                actual=digest,
            )
        where = f"{self.base}/v2/{name}/manifests/{tag}"
        files = [RemoteFile(url=where, path=blob_path(digest), sha256=digest, data=body)]
        if media in INDEX_TYPES:
            children = doc.get("manifests") or []
            if not isinstance(children, list) or len(children) > MAX_CHILDREN:
                raise BadUpstreamData(f"{where}: malformed image index")
            for child in children:
                child_hex = _digest_hex(child.get("digest") if isinstance(child, dict) else None,
                                        where)
                cbody, cdigest, cmedia, cdoc = await self._manifest(name, f"sha256:{child_hex}")
                if cmedia in INDEX_TYPES:
                    raise BadUpstreamData(f"{where}: nested image indexes are not supported")
                files.append(
                    RemoteFile(
                        url=f"{self.base}/v2/{name}/manifests/sha256:{cdigest}",
                        path=blob_path(cdigest),
                        sha256=cdigest,
                        data=cbody,
                    )
                )
                files.extend(self._blobs(name, cdoc, where))
        else:
            files.extend(self._blobs(name, doc, where))
        unique = list({f.path: f for f in files}.values())
        record = Record(
            type="image",
            name=name,
            version=tag,
            digest=f"sha256:{digest}",
            media_type=media,
        )
        return Resolved(artifact, unique, record)
