"""Signed-style Debian indexes: InRelease and Release.gpg are carried with the Release."""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp
import pytest

from services.release.bundle import export_bundle, import_bundle
from services.release.mirror.copier import mirror_release
from services.release.mirror.debian import (
    clearsigned_text,
    is_openpgp_signature,
    parse_deb822,
    release_hashes,
)
from services.release.mirror.errors import BadUpstreamData
from services.release.mirror.layout import MirrorDir
from services.release.mirror.server import MirrorServer
from shared.models import ClusterRelease
from tests.fakes.upstream import UpstreamCDN
from tests.release.conftest import DEB_CONTAINERD, DEB_DOCKER, make_release, upstreams_of


def _mirrored(root: Path, pattern: str) -> list[Path]:
    return list(root.rglob(pattern))


def upstream_copies(mirror: Path, release: ClusterRelease) -> dict[str, dict[str, bytes]]:
    """deb artifact name -> {file name: bytes} of the upstream index copies its record lists."""
    m = MirrorDir(mirror)
    out = {}
    for a in release.spec.artifacts:
        if a.type == "deb":
            record = m.read_record(a)
            assert record is not None, a
            assert record.files[0].path.startswith("debian/pool/")
            out[a.name] = {
                f.path.split("/", 4)[-1]: m.path(f.path).read_bytes() for f in record.files[1:]
            }
            assert all(f.path.startswith("debian/upstream/stable/") for f in record.files[1:])
    return out


async def test_signed_indexes_are_copied_served_and_bundled(
    upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path
) -> None:
    result = await mirror_release(release, upstreams_of(upstream), tmp_path / "m")
    assert result.failures == {}
    copies = upstream_copies(tmp_path / "m", release)
    # One snapshot, shared by both packages: the upstream's exact bytes.
    assert copies[DEB_CONTAINERD[0]] == copies[DEB_DOCKER[0]] == {
        "Release": upstream.release(),
        "InRelease": upstream.inrelease(),
        "Release.gpg": upstream.release_gpg(),
        "main/binary-amd64/Packages": upstream.packages(),
    }
    snap = copies[DEB_CONTAINERD[0]]
    assert clearsigned_text(snap["InRelease"].decode()) + "\n" == snap["Release"].decode()
    hashes = release_hashes(parse_deb822(snap["Release"].decode())[0])
    pkgs = snap["main/binary-amd64/Packages"]
    assert hashes["main/binary-amd64/Packages"] == (hashlib.sha256(pkgs).hexdigest(), len(pkgs))

    server = await MirrorServer(tmp_path / "m").start()
    try:
        record = MirrorDir(tmp_path / "m").read_record(release.spec.artifacts[0])
        assert record is not None
        async with aiohttp.ClientSession() as http:
            for ref in record.files[1:]:
                async with http.get(f"{server.url}/{ref.path}") as r:
                    assert r.status == 200
                    assert hashlib.sha256(await r.read()).hexdigest() == ref.sha256
            # Agents' apt must not pick up the upstream's InRelease over the regenerated one.
            async with http.get(f"{server.url}/debian/dists/stable/InRelease") as r:
                assert r.status == 404
    finally:
        await server.stop()

    # Air-gap: the bundle carries the signed indexes to a mirror with no upstream.
    bundle = tmp_path / "b.tar"
    export_bundle(release, tmp_path / "m", bundle)
    import_bundle(bundle, tmp_path / "airgap")
    assert upstream_copies(tmp_path / "airgap", release) == copies


async def test_inrelease_not_matching_release_fails_each_deb_artifact(
    upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path
) -> None:
    upstream.lag_inrelease()
    upstream.add_deb("lcm-agent", "1.38.0")  # Release changes, InRelease still signs the old
    result = await mirror_release(release, upstreams_of(upstream), tmp_path)
    dist = f"{upstream.url}/debian/dists/stable"
    reason = (
        f"{dist}/InRelease signs a different text than {dist}/Release "
        "(a half-published upstream?); refusing both"
    )
    assert result.failures == {
        f"deb {DEB_CONTAINERD[0]}={DEB_CONTAINERD[1]}": reason,
        f"deb {DEB_DOCKER[0]}={DEB_DOCKER[1]}": reason,
    }
    assert result.items_done == len(release.spec.artifacts) - 2
    assert _mirrored(tmp_path, "*.deb") == [] and _mirrored(tmp_path, "debian/upstream") == []


async def test_unsigned_upstream_still_mirrors(tmp_path: Path) -> None:
    cdn = UpstreamCDN(signed=False)
    cdn.add_deb(*DEB_CONTAINERD)
    cdn.add_deb(*DEB_DOCKER)
    await cdn.start()
    try:
        debs = make_release()
        debs.spec.artifacts = [a for a in debs.spec.artifacts if a.type == "deb"]
        result = await mirror_release(debs, upstreams_of(cdn), tmp_path)
    finally:
        await cdn.stop()
    assert result.failures == {}
    assert set(upstream_copies(tmp_path, debs)[DEB_DOCKER[0]]) == {
        "Release", "main/binary-amd64/Packages",
    }


def test_clearsigned_text_undoes_dash_escaping_and_rejects_non_armor() -> None:
    doc = (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nSuite: stable\n- -dashed\n"
        "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n=AAAA\n-----END PGP SIGNATURE-----\n"
    )
    assert clearsigned_text(doc) == "Suite: stable\n-dashed"
    with pytest.raises(BadUpstreamData, match="not a clearsigned document"):
        clearsigned_text("Suite: stable\n")
    assert is_openpgp_signature(b"-----BEGIN PGP SIGNATURE-----\n\nAA==\n")
    assert is_openpgp_signature(b"\x89\x02\x33")
    assert not is_openpgp_signature(b"<html>not found</html>")
