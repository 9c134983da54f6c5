"""``python -m services.release.mirror``: copy one release into a mirror directory, once.

The copy an ArtifactMirror object drives, without the store or the bus: for filling a
mirror to export an air-gap bundle from, and for checking an upstream by hand. Run it again
after a crash or Ctrl-C and it resumes (finished files are verified, not fetched; partial
ones continue with a Range request). With ``--progress`` it prints one JSON line per
finished artifact (items and bytes, done and total); the last line is always the summary.
Exit status: 0 when every artifact is mirrored, 1 when some failed (each named on stderr)
or the release cannot be read, 2 for bad arguments.

    python -m services.release.mirror --release mke-3-7-0 --mirror DIR \\
        --debian URL --helm URL --oci URL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from services.release.mirror.copier import Progress, mirror_release
from shared.models import ClusterRelease, Upstream


def _summary(p: Progress) -> str:
    return json.dumps({
        "items_done": p.items_done, "items_total": p.items_total,
        "bytes_done": p.bytes_done, "bytes_total": p.bytes_total,
        "failures": dict(sorted(p.failures.items())),
    })


def _upstreams(args: argparse.Namespace) -> list[Upstream]:
    out = []
    if args.debian:
        out.append(Upstream(type="debian", url=args.debian, suite=args.suite,
                            component=args.component, architecture=args.arch))
    if args.helm:
        out.append(Upstream(type="helm", url=args.helm))
    if args.oci:
        out.append(Upstream(type="oci", url=args.oci))
    return out


async def _copy(release: ClusterRelease, args: argparse.Namespace) -> Progress:
    seen = [-1]

    def on_progress(p: Progress) -> None:
        finished = p.items_done + len(p.failures)
        if args.progress and finished != seen[0]:
            seen[0] = finished
            print(_summary(p), flush=True)

    return await mirror_release(release, _upstreams(args), args.mirror,
                                parallelism=args.parallelism, on_progress=on_progress)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.release.mirror",
        description="Copy a release's artifacts from upstream CDNs into a mirror directory.",
    )
    parser.add_argument("--release", help="ClusterRelease name (default release data, or "
                        "which one of --release-file)")
    parser.add_argument("--release-file", help="YAML file holding the ClusterRelease")
    parser.add_argument("--mirror", required=True, type=Path, help="regional mirror directory")
    parser.add_argument("--debian", help="Debian repository URL (holds dists/ and pool/)")
    parser.add_argument("--suite", default="stable")
    parser.add_argument("--component", default="main")
    parser.add_argument("--arch", default="amd64")
    parser.add_argument("--helm", help="Helm repository URL (holds index.yaml)")
    parser.add_argument("--oci", help="OCI registry URL (serves /v2/)")
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--progress", action="store_true", help="print progress JSON lines")
    args = parser.parse_args(argv)
    if not args.release and not args.release_file:
        parser.error("give --release or --release-file")
    if not 1 <= args.parallelism <= 32:
        parser.error("--parallelism must be between 1 and 32")
    from services.release.bundle import _load_release
    from services.release.defaults import ReleaseDataError

    try:
        release = _load_release(args)
    except (ReleaseDataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        result = asyncio.run(_copy(release, args))
    except KeyboardInterrupt:
        print("interrupted; run again to resume", file=sys.stderr)
        return 130
    print(_summary(result), flush=True)
    for name, reason in sorted(result.failures.items()):
        print(f"error: {name}: {reason}", file=sys.stderr)
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
