"""Signed-style Debian indexes: InRelease and Release.gpg are carried with the Release."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import msgspec
import pytest

from services.release.bundle import export_bundle, import_bundle
from services.release.mirror.copier import mirror_release
from services.release.mirror.debian import (
    clearsigned_text,
    is_openpgp_signature,
    parse_deb822,
    release_hashes,
)
from services.release.mirror.errors import BadSignature, BadUpstreamData
from services.release.mirror.layout import MirrorDir
from services.release.mirror.openpgp import verify
from services.release.mirror.server import MirrorServer
from shared.armor import dearmor_keys
from shared.models import ClusterRelease, Upstream
from tests.fakes.openpgp import Signer
from tests.fakes.upstream import UpstreamCDN
from tests.release.conftest import DEB_CONTAINERD, DEB_DOCKER, mirror_debs, upstreams_of


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
    debs, result = await mirror_debs(UpstreamCDN(signed=False), tmp_path)
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


# --- signedBy: real signatures, verified with gpgv ----------------------------------------


@pytest.fixture
def vendor() -> Iterator[Signer]:
    signer = Signer()
    yield signer
    signer.close()


async def test_signed_by_mirrors_a_release_its_vendor_signed(
    vendor: Signer, tmp_path: Path
) -> None:
    debs, result = await mirror_debs(UpstreamCDN(signer=vendor), tmp_path, keys=vendor.public_key)
    assert result.failures == {}
    copies = upstream_copies(tmp_path, debs)[DEB_DOCKER[0]]
    assert set(copies) == {"Release", "InRelease", "Release.gpg", "main/binary-amd64/Packages"}
    assert clearsigned_text(copies["InRelease"].decode()) + "\n" == copies["Release"].decode()
    verify(vendor.public_key, copies["Release.gpg"], copies["Release"], what="copy")


async def test_signed_by_refuses_a_release_signed_by_another_key(
    vendor: Signer, tmp_path: Path
) -> None:
    impostor = Signer("Someone Else <else@example.test>")
    try:
        cdn = UpstreamCDN(signer=impostor)
        _, result = await mirror_debs(cdn, tmp_path, keys=vendor.public_key)
    finally:
        impostor.close()
    failures = result.failures
    assert set(failures) == {f"deb {DEB_CONTAINERD[0]}={DEB_CONTAINERD[1]}",
                             f"deb {DEB_DOCKER[0]}={DEB_DOCKER[1]}"}
    dist = f"{cdn.url}/debian/dists/stable"
    for reason in failures.values():
        assert reason.startswith(f"{dist}/InRelease: signature does not verify against spec "
                                 "signedBy: "), reason
        assert "No public key" in reason, reason
    assert _mirrored(tmp_path, "*.deb") == [] and _mirrored(tmp_path, "debian/upstream") == []


async def test_signed_by_requires_a_signed_release(vendor: Signer, tmp_path: Path) -> None:
    cdn = UpstreamCDN(signed=False)
    _, result = await mirror_debs(cdn, tmp_path, keys=vendor.public_key)
    dist = f"{cdn.url}/debian/dists/stable"
    assert set(result.failures.values()) == {
        f"{dist}: neither InRelease nor Release.gpg is published, and spec signedBy requires "
        "a signed Release"}
    assert _mirrored(tmp_path, "*.deb") == []


def test_verify_tells_a_changed_text_from_a_signed_one(vendor: Signer) -> None:
    signature = vendor.detach_sign(b"Suite: stable\n")
    verify(vendor.public_key, signature, b"Suite: stable\n", what="Release.gpg")
    with pytest.raises(BadSignature, match="BAD signature"):
        verify(vendor.public_key, signature, b"Suite: stab1e\n", what="Release.gpg")
    with pytest.raises(BadSignature, match="signedBy: an OpenPGP public key block is not"):
        verify(vendor.public_key.replace("\n\n", "\n\n!", 1), signature, b"x", what="x")


def test_a_good_signature_by_an_expired_key_is_refused() -> None:
    """gpgv itself exits 0 here; apt refuses such a Release, and so does the mirror."""
    old = Signer("Old Vendor <old@example.test>", expired=True)
    try:
        signature = old.detach_sign(b"Suite: stable\n")
        with pytest.raises(BadSignature, match="Release.gpg: signature does not verify "
                                               "against spec signedBy: signed with an expired key"):
            verify(old.public_key, signature, b"Suite: stable\n", what="Release.gpg")
    finally:
        old.close()


def test_signed_by_is_checked_when_written(vendor: Signer) -> None:
    ok = msgspec.convert({"type": "debian", "url": "http://u", "signedBy": vendor.public_key},
                         Upstream)
    assert dearmor_keys(ok.signed_by)
    for spec, why in (
        ({"type": "helm", "url": "http://u", "signedBy": vendor.public_key},
         "signedBy applies to debian upstreams only, not helm"),
        ({"type": "debian", "url": "http://u", "signedBy": "ssh-ed25519 AAAA"},
         "signedBy must hold ASCII-armored OpenPGP public keys: no OpenPGP public key block"),
    ):
        with pytest.raises(msgspec.ValidationError, match=why):
            msgspec.convert(spec, Upstream)


def test_dearmor_reads_every_key_block_and_names_what_is_malformed(vendor: Signer) -> None:
    one = dearmor_keys(vendor.public_key)
    assert one[0] & 0x80  # an OpenPGP packet header
    assert dearmor_keys(f"# two vendors\n{vendor.public_key}\n{vendor.public_key}") == one + one
    for text, why in (
        (vendor.public_key.replace("\n\n", "\n", 1), "lacks the empty line after its header"),
        (vendor.public_key.split("-----END")[0], "is not closed"),
        ("", "no OpenPGP public key block"),
    ):
        with pytest.raises(ValueError, match=why):
            dearmor_keys(text)
