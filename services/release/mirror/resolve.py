"""Shared vocabulary of the format readers: concrete files to copy, and small fetch helpers.

Each reader (``debian``, ``helm``, ``oci``) turns a release ``Artifact`` into a ``Resolved``:
the upstream files with their expected sha256 and size, and the metadata ``Record`` the
mirror keeps once they are all copied. Index documents (Release, Packages, index.yaml,
manifests) are small and fetched whole here; big files are left to the copier.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from services.release.mirror.errors import FetchError
from services.release.mirror.layout import Record
from shared.models import Artifact

MAX_INDEX_BYTES = 64 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One file to place at ``path`` (relative to the mirror root)."""

    url: str
    path: str
    sha256: str
    size: int | None = None
    # Bytes already fetched and verified while resolving (OCI manifests).
    data: bytes | None = None


@dataclass
class Resolved:
    artifact: Artifact
    files: list[RemoteFile]
    record: Record
    notes: list[str] = field(default_factory=list)


class Reader(Protocol):
    async def resolve(self, artifact: Artifact) -> Resolved: ...


async def fetch_bytes(
    session: aiohttp.ClientSession, url: str, *, headers: dict[str, str] | None = None
) -> tuple[bytes, Mapping[str, str]]:
    """GET a small document; errors name the URL and the HTTP status."""
    try:
        async with session.get(url, headers=headers) as resp:
            if resp.status != 200:
                reason = f"HTTP {resp.status} {resp.reason or ''}".strip()
                raise FetchError(url, reason, status=resp.status)
            body = await resp.content.read(MAX_INDEX_BYTES + 1)
            if len(body) > MAX_INDEX_BYTES:
                raise FetchError(url, f"index larger than {MAX_INDEX_BYTES} bytes")
            return body, resp.headers
    except (aiohttp.ClientError, TimeoutError) as e:
        raise FetchError(url, f"request failed: {e.__class__.__name__}: {e}") from None



def join(base: str, rel: str) -> str:
    return base.rstrip("/") + "/" + rel.lstrip("/")
