"""Pruning a regional mirror: what no release in use needs goes, so a region's disk does not
fill with every release it ever mirrored (as a registry's garbage collection does).

Kept: the records of the artifacts of the releases given, and every file a kept record
lists (files are shared: an image layer, a Debian provenance snapshot). Removed: other
records, then the files no kept record lists - only once older than ``grace``, since a copy
writes an artifact's files before its record (a file that new may be about to be listed) -
and partial downloads and temporary files left that long. Records go first: the server
stops listing an artifact as soon as its record is gone (its indexes follow the record
directories), so nothing it lists ever misses a file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from services.release.mirror.layout import RECORD_TYPES, MirrorDir, Record
from shared.models import Artifact, ClusterRelease

log = logging.getLogger(__name__)

AREAS = ("debian", "helm", "oci")  # where artifact files live (records list them)
DEFAULT_GRACE = 3600.0
Key = tuple[str, str, str]  # (type, name, version)


def wanted(releases: Iterable[ClusterRelease]) -> set[Key]:
    """The artifacts the given releases are made of."""
    return {key(a) for r in releases for a in r.spec.artifacts}


def key(artifact: Artifact | Record) -> Key:
    return artifact.type, artifact.name, artifact.version


@dataclass
class PrunePlan:
    records: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    bytes: int = 0
    kept: int = 0  # records kept
    names: list[str] = field(default_factory=list)  # the artifacts whose records go

    def summary(self) -> str:
        return (f"{len(self.records)} artifacts, {len(self.files)} files "
                f"({self.bytes / 2**20:.1f} MiB); {self.kept} artifacts kept")


def plan(mirror: MirrorDir, keep: set[Key], *, grace: float = DEFAULT_GRACE,
         now: float | None = None) -> PrunePlan:
    """What pruning ``mirror`` down to ``keep`` removes; nothing is touched."""
    cutoff = (time.time() if now is None else now) - grace
    out = PrunePlan()
    listed: set[str] = set()
    for type_ in RECORD_TYPES:
        folder = mirror.root / "records" / type_
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            try:
                record = msgspec.json.decode(path.read_bytes(), type=Record)
            except (msgspec.DecodeError, msgspec.ValidationError, OSError):
                if _older(path, cutoff):  # unreadable: the server ignores it too
                    out.records.append(path)
                    out.names.append(f"unreadable record {path.name}")
                continue
            if key(record) in keep or not _older(path, cutoff):
                out.kept += 1
                listed.update(f.path for f in record.files)
            else:
                out.records.append(path)
                out.names.append(f"{record.type} {record.name} {record.version}".rstrip())
    for tmp in sorted((mirror.root / "records").rglob(".*.tmp")):
        if _older(tmp, cutoff):  # a record write that never finished
            out.files.append(tmp)
    for area in AREAS:
        top = mirror.root / area
        for path in sorted(top.rglob("*")) if top.is_dir() else ():
            if not path.is_file() or path.is_symlink():
                continue
            rel = path.relative_to(mirror.root).as_posix()
            if rel not in listed and _older(path, cutoff):
                out.files.append(path)
                out.bytes += path.stat().st_size
    return out


def apply(mirror: MirrorDir, p: PrunePlan) -> None:
    """Carry out ``p``: records, then files, then the folders left empty."""
    for path in (*p.records, *p.files):
        path.unlink(missing_ok=True)
    for area in AREAS:
        top = mirror.root / area
        if not top.is_dir():
            continue
        for folder in sorted((d for d in top.rglob("*") if d.is_dir()),
                             key=lambda d: len(d.parts), reverse=True):
            try:
                folder.rmdir()  # only succeeds when empty
            except OSError:
                pass


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def main(argv: list[str] | None = None) -> int:
    """``python -m services.release.mirror.prune``: prune a mirror directory by hand (an
    air-gapped one, or before exporting a bundle), down to the releases named."""
    import argparse
    import sys

    from services.release.defaults import DATA_DIR, ReleaseDataError, cluster_release

    parser = argparse.ArgumentParser(
        prog="python -m services.release.mirror.prune",
        description="Remove from a mirror directory what the releases named do not need.")
    parser.add_argument("--mirror", required=True, type=Path, help="mirror directory")
    parser.add_argument("--keep-release", action="append", default=[], metavar="NAME",
                        help="a ClusterRelease whose artifacts stay (repeat for several)")
    parser.add_argument("--release-data", type=Path, default=DATA_DIR,
                        help="folder of release YAML files (default: the shipped ones)")
    parser.add_argument("--grace", type=float, default=DEFAULT_GRACE,
                        help="seconds a file must be old to go (default %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="list, remove nothing")
    args = parser.parse_args(argv)
    if not args.keep_release:
        parser.error("give at least one --keep-release (pruning to nothing is rm -rf)")
    if not args.mirror.is_dir():
        parser.error(f"--mirror {args.mirror}: not a directory")
    try:
        releases = [cluster_release(n, args.release_data) for n in args.keep_release]
    except (ReleaseDataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    mirror = MirrorDir(args.mirror)
    todo = plan(mirror, wanted(releases), grace=args.grace)
    for name in todo.names:
        print(f"{'would remove' if args.dry_run else 'removing'} {name}")
    if not args.dry_run:
        apply(mirror, todo)
    print(f"{'would remove' if args.dry_run else 'removed'} {todo.summary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
