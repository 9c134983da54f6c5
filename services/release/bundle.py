"""Air-gap bundles: a release's mirrored artifacts in one tar file, and its import.

``export_bundle`` writes ``manifest.json`` (format, release, every file and record with its
sha256 and size) followed by ``files/<path>`` and ``records/<type>/<name>.json`` members,
straight from a mirror that already holds the whole release. ``import_bundle`` streams the
members into a staging directory inside the target mirror, verifies every checksum and
that the records agree with the files (blob paths are their digests, Debian stanzas and
Helm digests name the file's sha256), and only then renames files and finally records
into place. A tampered or incomplete bundle is rejected with the reason and the mirror is
left exactly as it was. No upstream is needed on the importing side.

The manifest's checksums prove the bundle is what was exported, not that the vendor
published it. Given the vendor's keys (``--signed-by``, as an ArtifactMirror's
``signedBy``), the import also checks every Debian package against the upstream's index
snapshot the bundle carries - a signature by those keys over the Release, the Release's
hash of the Packages index, the index's hash of the .deb - as apt would against the
upstream itself, offline.

CLI::

    python -m services.release.bundle export --release mke-3-7-1 --mirror DIR --output B.tar
    python -m services.release.bundle import B.tar --mirror DIR [--signed-by VENDOR.asc]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tarfile
import uuid
from pathlib import Path

import msgspec

from services.release.mirror.debian import verified_packages
from services.release.mirror.errors import MirrorError
from services.release.mirror.layout import (
    HASH_CHUNK,
    FileRef,
    LayoutError,
    MirrorDir,
    Record,
    label,
    safe_relpath,
)
from shared.armor import dearmor_keys
from shared.models import ClusterRelease

FORMAT = "container-cloud-bundle/v1"
MANIFEST = "manifest.json"


class BundleError(ValueError):
    """A bundle that cannot be exported or imported; the message says which artifact/file."""


class Manifest(msgspec.Struct, kw_only=True):
    format: str
    release: str
    artifacts: list[str]
    files: list[FileRef]
    records: list[FileRef]


def export_bundle(release: ClusterRelease, mirror_dir: Path, output: Path) -> Manifest:
    """Write ``output`` (a tar file) holding everything ``release`` needs from the mirror."""
    mirror = MirrorDir(mirror_dir)
    files: dict[str, FileRef] = {}
    records: list[tuple[FileRef, bytes]] = []
    missing: list[str] = []
    for artifact in release.spec.artifacts:
        record = mirror.read_record(artifact)
        if record is None or not all(mirror.verified(f) for f in record.files):
            missing.append(label(artifact))
            continue
        files.update((f.path, f) for f in record.files)
        raw = mirror.record_for(artifact).read_bytes()
        rel = mirror.record_for(artifact).relative_to(mirror.root).as_posix()
        records.append(
            (FileRef(path=rel, sha256=hashlib.sha256(raw).hexdigest(), size=len(raw)), raw)
        )
    if missing:
        raise BundleError(
            f"release {release.metadata.name} is not fully mirrored in {mirror_dir}; "
            f"missing or unverified: {', '.join(missing)}"
        )
    manifest = Manifest(
        format=FORMAT,
        release=release.metadata.name,
        artifacts=[label(a) for a in release.spec.artifacts],
        files=sorted(files.values(), key=lambda f: f.path),
        records=[r for r, _ in records],
    )
    output = Path(output)
    tmp = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, MANIFEST, msgspec.json.format(msgspec.json.encode(manifest)))
            for ref in manifest.files:
                tar.add(mirror.path(ref.path), arcname=f"files/{ref.path}", recursive=False)
            for ref, raw in records:
                _add_bytes(tar, ref.path, raw)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return manifest


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def import_bundle(bundle: Path, mirror_dir: Path, *, signed_by: str = "",
                  keys_from: str = "--signed-by") -> Manifest:
    """Verify every member of ``bundle`` (and with ``signed_by``, the vendor's armored
    keys, every Debian package's signed chain), then make its artifacts visible in the
    mirror."""
    mirror = MirrorDir(mirror_dir)
    mirror.root.mkdir(parents=True, exist_ok=True)
    if signed_by:
        try:
            dearmor_keys(signed_by)
        except ValueError as e:
            raise BundleError(f"{keys_from}: {e}") from None
    staging = mirror.root / f".import-{uuid.uuid4().hex[:12]}"
    try:
        manifest = _stage(Path(bundle), staging)
        if signed_by:
            _check_signed(Path(bundle), manifest, staging, signed_by, keys_from)
        _commit(manifest, staging, mirror)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stage(bundle: Path, staging: Path) -> Manifest:
    try:
        tar = tarfile.open(bundle, "r:")
    except (OSError, tarfile.TarError) as e:
        raise BundleError(f"{bundle}: not a readable bundle tar file: {e}") from None
    with tar:
        first = tar.next()
        if first is None or first.name != MANIFEST or not first.isfile():
            raise BundleError(f"{bundle}: first member must be {MANIFEST}")
        fobj = tar.extractfile(first)
        assert fobj is not None
        try:
            manifest = msgspec.json.decode(fobj.read(), type=Manifest)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise BundleError(f"{bundle}: malformed {MANIFEST}: {e}") from None
        if manifest.format != FORMAT:
            raise BundleError(f"{bundle}: unsupported bundle format {manifest.format!r}")
        expected: dict[str, FileRef] = {}
        try:
            for ref in manifest.files:
                expected[f"files/{safe_relpath(ref.path)}"] = ref
            for ref in manifest.records:
                if not safe_relpath(ref.path).startswith("records/"):
                    raise LayoutError(f"record path {ref.path!r} outside records/")
                expected[ref.path] = ref
        except LayoutError as e:
            raise BundleError(f"{bundle}: {e}") from None
        seen: set[str] = set()
        while (member := tar.next()) is not None:
            ref = expected.get(member.name)
            if ref is None or member.name in seen:
                raise BundleError(f"{bundle}: unexpected member {member.name!r}")
            if not member.isfile():
                raise BundleError(f"{bundle}: member {member.name!r} is not a regular file")
            seen.add(member.name)
            src = tar.extractfile(member)
            assert src is not None
            dest = staging / member.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            h = hashlib.sha256()
            size = 0
            with dest.open("wb") as out:
                while chunk := src.read(HASH_CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if h.hexdigest() != ref.sha256 or size != ref.size:
                raise BundleError(
                    f"{bundle}: {member.name} is corrupt or tampered: sha256 expected "
                    f"{ref.sha256} ({ref.size} bytes), got {h.hexdigest()} ({size} bytes)"
                )
        absent = sorted(set(expected) - seen)
        if absent:
            raise BundleError(f"{bundle}: members listed in {MANIFEST} are missing: {absent}")
    _cross_check(bundle, manifest, staging)
    return manifest


def _cross_check(bundle: Path, manifest: Manifest, staging: Path) -> None:
    """Records must agree with the files they list, and content-addressed paths with data."""
    files = {f.path: f for f in manifest.files}
    for ref in manifest.files:
        if ref.path.startswith("oci/blobs/sha256/") and ref.path.rsplit("/", 1)[1] != ref.sha256:
            raise BundleError(f"{bundle}: blob {ref.path} does not hold its digest")
    for ref in manifest.records:
        try:
            record = msgspec.json.decode((staging / ref.path).read_bytes(), type=Record)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise BundleError(f"{bundle}: record {ref.path} is malformed: {e}") from None
        for f in record.files:
            if files.get(f.path) != f:
                raise BundleError(
                    f"{bundle}: record {ref.path} lists {f.path} with sha256 {f.sha256}, "
                    "which the bundle does not carry"
                )
        first = record.files[0].sha256 if record.files else ""
        if record.type == "deb" and f"SHA256: {first}" not in record.stanza:
            raise BundleError(f"{bundle}: Debian stanza of {record.name} disagrees with its file")
        if record.type == "helm" and record.chart.get("digest") != first:
            raise BundleError(f"{bundle}: Helm digest of {record.name} disagrees with its chart")
        if record.type == "image" and record.digest.removeprefix("sha256:") not in {
            f.sha256 for f in record.files
        }:
            raise BundleError(f"{bundle}: image {record.name} lacks its manifest blob")


def _check_signed(bundle: Path, manifest: Manifest, staging: Path, keys: str,
                  keys_from: str) -> None:
    """Every Debian record's .deb is listed, with its sha256, by an index snapshot whose
    Release ``keys`` signed (each snapshot checked once)."""
    listed: dict[str, dict[tuple[str, str], str]] = {}
    for ref in manifest.records:
        record = msgspec.json.decode((staging / ref.path).read_bytes(), type=Record)
        if record.type != "deb":
            continue
        deb, copies = record.files[0], record.files[1:]
        snapshots = {"/".join(f.path.split("/", 4)[:4]) for f in copies}
        if len(snapshots) != 1 or any(f.path.count("/") < 4 for f in copies):
            raise BundleError(f"{bundle}: Debian package {record.name} {record.version} "
                              "carries no upstream index snapshot to check its signature with")
        where = snapshots.pop()
        if where not in listed:
            files = {f.path.split("/", 4)[4]: (staging / "files" / f.path).read_bytes()
                     for f in copies}
            try:
                listed[where] = verified_packages(files, keys, where=f"{bundle}:{where}",
                                                  keys_from=keys_from)
            except MirrorError as e:
                raise BundleError(str(e)) from None
        if listed[where].get((record.name, record.version)) != deb.sha256:
            raise BundleError(f"{bundle}: {deb.path} is not the {record.name} "
                              f"{record.version} that the signed index of {where} lists")


def _commit(manifest: Manifest, staging: Path, mirror: MirrorDir) -> None:
    # Files first (invisible until a record names them), records last.
    for ref in manifest.files:
        dest = mirror.path(ref.path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / "files" / ref.path, dest)
    for ref in manifest.records:
        dest = mirror.path(ref.path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / ref.path, dest)


# --- CLI --------------------------------------------------------------------------------


def _load_release(args: argparse.Namespace) -> ClusterRelease:
    from services.release.defaults import ReleaseDataError, cluster_release, load_file

    if args.release_file:
        objs = [o for o in load_file(Path(args.release_file)) if isinstance(o, ClusterRelease)]
        if args.release:
            objs = [o for o in objs if o.metadata.name == args.release]
        if len(objs) != 1:
            raise ReleaseDataError(f"{args.release_file}: expected exactly one ClusterRelease")
        return objs[0]
    return cluster_release(args.release)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.release.bundle", description="Air-gap release bundles."
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    exp = sub.add_parser("export", help="write a release's mirrored artifacts to a bundle")
    exp.add_argument("--release", help="ClusterRelease name (from the default release data)")
    exp.add_argument("--release-file", help="YAML file holding the ClusterRelease")
    exp.add_argument("--mirror", required=True, type=Path, help="regional mirror directory")
    exp.add_argument("--output", "-o", required=True, type=Path, help="bundle file to write")
    imp = sub.add_parser("import", help="verify a bundle and add it to a mirror")
    imp.add_argument("bundle", type=Path)
    imp.add_argument("--mirror", required=True, type=Path, help="regional mirror directory")
    imp.add_argument("--signed-by", type=Path, metavar="KEYS.asc",
                     help="the vendor's armored OpenPGP public keys: every Debian package "
                          "must chain up to a Release they signed")
    args = parser.parse_args(argv)
    from services.release.defaults import ReleaseDataError

    try:
        if args.cmd == "export":
            if not args.release and not args.release_file:
                parser.error("export needs --release or --release-file")
            m = export_bundle(_load_release(args), args.mirror, args.output)
            print(f"exported {m.release}: {len(m.artifacts)} artifacts, {len(m.files)} files "
                  f"-> {args.output}")
        else:
            keys = args.signed_by.read_text(errors="replace") if args.signed_by else ""
            m = import_bundle(args.bundle, args.mirror, signed_by=keys,
                              keys_from=str(args.signed_by or ""))
            print(f"imported {m.release}: {len(m.artifacts)} artifacts, {len(m.files)} files "
                  f"into {args.mirror}")
    except (BundleError, ReleaseDataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
