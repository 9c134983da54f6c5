"""Air-gap: export a mirrored release to one file, import it where no upstream exists."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import aiohttp
import msgspec
import pytest
import yaml

from services.release.bundle import BundleError, export_bundle, import_bundle, main
from services.release.mirror.copier import mirror_release
from services.release.mirror.server import MirrorServer
from shared.models import ClusterRelease, Upstream
from tests.fakes.openpgp import Signer
from tests.fakes.upstream import UpstreamCDN
from tests.release.conftest import BINARY, mirror_debs, upstreams_of


def tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
async def bundle(upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path) -> Path:
    result = await mirror_release(release, upstreams_of(upstream), tmp_path / "source")
    assert result.failures == {}
    out = tmp_path / "mke.tar"
    manifest = await asyncio.to_thread(export_bundle, release, tmp_path / "source", out)
    assert manifest.release == release.metadata.name
    assert len(manifest.records) == len(release.spec.artifacts)
    return out


async def test_export_import_serves_same_bytes(
    bundle: Path, upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    await upstream.stop()  # the importing side has no upstream at all
    target = tmp_path / "airgapped"
    manifest = await asyncio.to_thread(import_bundle, bundle, target)
    assert len(manifest.files) > 10
    assert tree(target) == tree(source)
    assert not [p for p in target.iterdir() if p.name.startswith(".import-")]

    server = await MirrorServer(target).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/helm/{BINARY}") as r:
                assert await r.read() == upstream.files[f"/helm/{BINARY}"]
            async with http.get(f"{server.url}/helm/index.yaml") as r:
                index = yaml.safe_load(await r.read())
            assert sorted(index["entries"]) == ["cert-manager", "metallb"]
            digest = upstream.images["mirantis/ucp"].tags["3.7.0"]
            async with http.get(f"{server.url}/v2/mirantis/ucp/manifests/3.7.0") as r:
                assert r.headers["Docker-Content-Digest"] == f"sha256:{digest}"
                assert hashlib.sha256(await r.read()).hexdigest() == digest
        # Everything the release needs is reachable and verifies, in all three formats.
        downstream = [
            Upstream(type="debian", url=f"{server.url}/debian"),
            Upstream(type="helm", url=f"{server.url}/helm"),
            Upstream(type="oci", url=server.url),
        ]
        again = await mirror_release(release, downstream, tmp_path / "third")
        assert again.failures == {} and again.items_done == len(release.spec.artifacts)
    finally:
        await server.stop()


def _tamper_member(bundle: Path, name: str) -> None:
    with tarfile.open(bundle) as tar:
        member = tar.getmember(name)
        offset = member.offset_data
    with bundle.open("r+b") as f:
        f.seek(offset + 10)
        byte = f.read(1)
        f.seek(offset + 10)
        f.write(bytes([byte[0] ^ 0x01]))


def _rewrite(bundle: Path, out: Path, change: dict[str, bytes], manifest_fix: bool) -> None:
    """Copy the bundle replacing members; optionally fix up their manifest entries too."""
    with tarfile.open(bundle) as src, tarfile.open(out, "w") as dst:
        manifest = json.loads(src.extractfile(src.next()).read())  # type: ignore[union-attr]
        if manifest_fix:
            entries = [(f"files/{e['path']}", e) for e in manifest["files"]]
            entries += [(e["path"], e) for e in manifest["records"]]
            for name, entry in entries:
                data = change.get(name)
                if data is not None:
                    entry["sha256"] = hashlib.sha256(data).hexdigest()
                    entry["size"] = len(data)
        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        dst.addfile(info, io.BytesIO(body))
        for member in src.getmembers()[1:]:
            data = change.get(member.name) or src.extractfile(member).read()  # type: ignore[union-attr]
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))


async def test_tampered_bundle_is_rejected_and_mirror_unchanged(
    bundle: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("existing mirror content\n")
    before = tree(target)

    with tarfile.open(bundle) as tar:
        deb = next(n for n in tar.getnames() if n.endswith(".deb") and "containerd" in n)
        blob = next(n for n in tar.getnames() if n.startswith("files/oci/blobs/"))
    pristine = tmp_path / "pristine.tar"
    shutil.copyfile(bundle, pristine)
    _tamper_member(bundle, deb)
    with pytest.raises(BundleError, match=f"{deb} is corrupt or tampered: sha256 expected"):
        await asyncio.to_thread(import_bundle, bundle, target)
    assert tree(target) == before
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]

    # Replacing a blob and its manifest entry together is still caught: blobs are digests.
    forged = tmp_path / "forged.tar"
    await asyncio.to_thread(_rewrite, pristine, forged, {blob: b"evil layer"}, True)
    with pytest.raises(BundleError, match="does not hold its digest"):
        await asyncio.to_thread(import_bundle, forged, target)
    assert tree(target) == before

    extra = tmp_path / "extra.tar"
    with tarfile.open(pristine) as src, tarfile.open(extra, "w") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member))
        # ... a pristine bundle plus one member the manifest does not list
        info = tarfile.TarInfo("files/../../escape")
        info.size = 1
        dst.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(BundleError, match="unexpected member 'files/../../escape'"):
        await asyncio.to_thread(import_bundle, extra, target)
    assert tree(target) == before


async def test_export_refuses_incomplete_mirror(
    upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path
) -> None:
    upstream.corrupt(f"/helm/{BINARY}")
    await mirror_release(release, upstreams_of(upstream), tmp_path / "m")
    with pytest.raises(BundleError, match=f"missing or unverified: binary {BINARY}=1.38.0"):
        await asyncio.to_thread(export_bundle, release, tmp_path / "m", tmp_path / "b.tar")
    assert not (tmp_path / "b.tar").exists()


async def test_cli_round_trip(bundle: Path, release: ClusterRelease, tmp_path: Path) -> None:
    rel_file = tmp_path / "release.yaml"
    rel_file.write_text(yaml.safe_dump(msgspec.to_builtins(release)))
    out = tmp_path / "cli.tar"
    argv = ["export", "--release-file", str(rel_file), "--mirror", str(tmp_path / "source"),
            "-o", str(out)]
    assert await asyncio.to_thread(main, argv) == 0
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.release.bundle", "import", str(out),
         "--mirror", str(tmp_path / "cli-mirror")],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"imported {release.metadata.name}: 8 artifacts" in proc.stdout
    _tamper_member(out, next(n for n in tarfile.open(out).getnames() if n.endswith(".tgz")))
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.release.bundle", "import", str(out),
         "--mirror", str(tmp_path / "other")],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "corrupt or tampered" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- --signed-by: the vendor's signature, checked offline -----------------------------------


async def signed_bundle(signer: Signer, tmp_path: Path) -> tuple[Path, ClusterRelease]:
    """A bundle of a release's Debian packages, mirrored from an upstream ``signer`` signs."""
    debs, result = await mirror_debs(UpstreamCDN(signer=signer), tmp_path / "signed-source",
                                     keys=signer.public_key)
    assert result.failures == {}
    out = tmp_path / "signed.tar"
    await asyncio.to_thread(export_bundle, debs, tmp_path / "signed-source", out)
    return out, debs


def forge_deb(bundle: Path, out: Path) -> str:
    """Replace one .deb with other bytes and make the bundle agree with itself: the record's
    file entry and stanza, and the manifest's checksums - what the manifest cannot catch."""
    with tarfile.open(bundle) as tar:
        record_name = next(n for n in tar.getnames()
                           if n.startswith("records/") and "containerd" in n)
        record = json.loads(tar.extractfile(record_name).read())  # type: ignore[union-attr]
    deb = record["files"][0]
    evil = b"!<arch>\nnot the vendor's package\n"
    sha = hashlib.sha256(evil).hexdigest()
    record["stanza"] = record["stanza"].replace(f"SHA256: {deb['sha256']}", f"SHA256: {sha}")
    record["stanza"] = record["stanza"].replace(f"Size: {deb['size']}", f"Size: {len(evil)}")
    deb.update(sha256=sha, size=len(evil))
    _rewrite(bundle, out, {f"files/{deb['path']}": evil,
                           record_name: json.dumps(record).encode()}, True)
    return str(deb["path"])


async def test_signed_by_imports_what_the_vendor_signed_and_refuses_a_forgery(
    tmp_path: Path,
) -> None:
    vendor, impostor = Signer(), Signer("Someone Else <else@example.test>")
    try:
        bundle, debs = await signed_bundle(vendor, tmp_path)
        keys = vendor.public_key
        manifest = await asyncio.to_thread(import_bundle, bundle, tmp_path / "ok", signed_by=keys)
        assert manifest.artifacts == [f"deb {a.name}={a.version}" for a in debs.spec.artifacts]

        # The forgery agrees with its own manifest: without the keys it would be imported.
        forged = tmp_path / "forged.tar"
        path = await asyncio.to_thread(forge_deb, bundle, forged)
        await asyncio.to_thread(import_bundle, forged, tmp_path / "unchecked")
        target = tmp_path / "target"
        target.mkdir()
        with pytest.raises(BundleError, match=f"{path} is not the containerd.io .* that the "
                                              "signed index of debian/upstream/stable/"):
            await asyncio.to_thread(import_bundle, forged, target, signed_by=keys)
        assert list(target.iterdir()) == []

        # Signed by someone else: refused, saying which signature and why.
        with pytest.raises(BundleError, match="InRelease: signature does not verify against "
                                              "--signed-by: .*No public key"):
            await asyncio.to_thread(import_bundle, bundle, target,
                                    signed_by=impostor.public_key)
        assert list(target.iterdir()) == []
        with pytest.raises(BundleError, match="--signed-by: no OpenPGP public key block"):
            await asyncio.to_thread(import_bundle, bundle, target, signed_by="not a key")
    finally:
        vendor.close()
        impostor.close()


async def test_signed_by_refuses_a_bundle_from_an_unsigned_upstream(tmp_path: Path) -> None:
    debs, result = await mirror_debs(UpstreamCDN(signed=False), tmp_path / "source")
    assert result.failures == {}
    bundle = tmp_path / "unsigned.tar"
    await asyncio.to_thread(export_bundle, debs, tmp_path / "source", bundle)
    vendor = Signer()
    try:
        with pytest.raises(BundleError, match="neither InRelease nor Release.gpg is published, "
                                              "and --signed-by requires a signed Release"):
            await asyncio.to_thread(import_bundle, bundle, tmp_path / "target",
                                    signed_by=vendor.public_key)
    finally:
        vendor.close()
    assert list((tmp_path / "target").iterdir()) == []


async def test_cli_signed_by(tmp_path: Path) -> None:
    vendor = Signer()
    try:
        bundle, _ = await signed_bundle(vendor, tmp_path)
        keys = tmp_path / "vendor.asc"
        keys.write_text(vendor.public_key)
    finally:
        vendor.close()
    forged = tmp_path / "forged.tar"
    await asyncio.to_thread(forge_deb, bundle, forged)

    def run(path: Path, mirror: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.release.bundle", "import", str(path),
             "--mirror", str(tmp_path / mirror), "--signed-by", str(keys)],
            capture_output=True, text=True, check=False)

    ok = await asyncio.to_thread(run, bundle, "ok")
    assert ok.returncode == 0 and "imported" in ok.stdout, ok.stderr
    bad = await asyncio.to_thread(run, forged, "bad")
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and \
        "that the signed index of" in bad.stderr and "Traceback" not in bad.stderr
