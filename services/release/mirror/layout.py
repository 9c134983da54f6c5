"""The regional mirror directory: where each format's files and metadata records live.

Layout under the mirror root::

    debian/pool/...                  .deb files, at the upstream's ``Filename`` path
    helm/charts/<chart>-<ver>.tgz    Helm chart archives
    helm/<path>                      binaries published next to the charts
    oci/blobs/sha256/<hex>           OCI manifests, configs and layers (content-addressed)
    records/<type>/<name>@<ver>.json one record per mirrored artifact

A record is written (atomically) only after every file it lists is present and verified,
so the regional HTTP server and the bundle exporter see an artifact all at once or not at
all. Records carry what the server needs to regenerate indexes: the Debian stanza, the Helm
index entry, the image tag -> manifest digest mapping.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import quote

import msgspec

from shared.models import Artifact

ArtifactType = Literal["deb", "helm", "image", "binary"]
RECORD_TYPES: tuple[ArtifactType, ...] = ("deb", "helm", "image", "binary")
HASH_CHUNK = 1 << 20


class LayoutError(ValueError):
    """A path or record that would escape or corrupt the mirror directory."""


class FileRef(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One file of a mirrored artifact, relative to the mirror root."""

    path: str
    sha256: str
    size: int


class Record(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the mirror holds for one artifact of a release."""

    type: ArtifactType
    name: str
    version: str
    files: list[FileRef] = msgspec.field(default_factory=list)
    # deb: the Packages stanza (Filename/Size/SHA256 match the mirrored file).
    stanza: str = ""
    suite: str = ""
    component: str = ""
    architecture: str = ""
    # helm: the index.yaml entry, urls relative to the mirror's helm/ root.
    chart: dict[str, Any] = msgspec.field(default_factory=dict)
    # image: the tag's manifest digest ("sha256:...") and media type.
    digest: str = ""
    media_type: str = ""


def label(artifact: Artifact) -> str:
    """Human name of an artifact in messages and status: ``image mirantis/ucp:3.7.0``."""
    sep = ":" if artifact.type == "image" else "="
    return f"{artifact.type} {artifact.name}{sep}{artifact.version}" if artifact.version else (
        f"{artifact.type} {artifact.name}"
    )


def safe_relpath(path: str) -> str:
    """A relative POSIX path that stays inside the mirror root, or ``LayoutError``."""
    p = PurePosixPath(path)
    if not path or p.is_absolute() or any(part in ("..", "") for part in p.parts) or (
        "\\" in path or "\x00" in path
    ):
        raise LayoutError(f"unsafe path {path!r}")
    return p.as_posix()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def normalize_sha(value: str) -> str:
    return value.removeprefix("sha256:").lower()


class MirrorDir:
    """Paths and atomic writes in one regional mirror directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, rel: str) -> Path:
        return self.root / safe_relpath(rel)

    def record_path(self, type_: str, name: str, version: str) -> Path:
        fname = f"{quote(name, safe='')}@{quote(version, safe='')}.json"
        return self.root / "records" / type_ / fname

    def record_for(self, artifact: Artifact) -> Path:
        return self.record_path(artifact.type, artifact.name, artifact.version)

    def read_record(self, artifact: Artifact) -> Record | None:
        p = self.record_for(artifact)
        try:
            return msgspec.json.decode(p.read_bytes(), type=Record)
        except FileNotFoundError:
            return None
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None

    def write_record(self, record: Record) -> Path:
        p = self.record_path(record.type, record.name, record.version)
        self.write_atomic(p, msgspec.json.encode(record))
        return p

    def records(self, type_: ArtifactType | None = None) -> list[Record]:
        out: list[Record] = []
        for t in (type_,) if type_ else RECORD_TYPES:
            d = self.root / "records" / t
            if not d.is_dir():
                continue
            for p in sorted(d.glob("*.json")):
                try:
                    out.append(msgspec.json.decode(p.read_bytes(), type=Record))
                except (msgspec.DecodeError, msgspec.ValidationError, OSError):
                    continue
        return out

    def records_stamp(self) -> tuple[int, ...]:
        """Changes whenever a record is added or replaced (directory mtimes)."""
        stamps = []
        for t in RECORD_TYPES:
            try:
                stamps.append((self.root / "records" / t).stat().st_mtime_ns)
            except FileNotFoundError:
                stamps.append(0)
        return tuple(stamps)

    def verified(self, ref: FileRef) -> bool:
        """True if the file is present with the expected size and sha256."""
        p = self.path(ref.path)
        try:
            if p.stat().st_size != ref.size:
                return False
        except FileNotFoundError:
            return False
        return sha256_file(p) == ref.sha256

    def write_atomic(self, dest: Path, data: bytes) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
