"""The copier mirrors all three formats exactly, and the regional server serves them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from services.release.mirror.copier import Progress, mirror_release
from services.release.mirror.debian import parse_deb822, release_hashes
from services.release.mirror.oci import ACCEPT, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from services.release.mirror.server import MirrorServer
from shared.models import Artifact, ClusterRelease, Upstream
from tests.fakes.upstream import UpstreamCDN
from tests.release.conftest import BINARY, make_release, upstreams_of


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def get(http: aiohttp.ClientSession, url: str, **kw: object) -> tuple[int, bytes, dict]:
    async with http.get(url, **kw) as r:  # type: ignore[arg-type]
        return r.status, await r.read(), dict(r.headers)


async def test_mirror_all_formats_and_serve(
    upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    seen: list[Progress] = []
    snapshots: list[tuple[int, int]] = []

    def on_progress(p: Progress) -> None:
        seen.append(p)
        snapshots.append((p.items_done, p.bytes_done))

    result = await mirror_release(
        release, upstreams_of(upstream), tmp_path / "m", parallelism=3, on_progress=on_progress
    )
    assert result.failures == {}
    assert result.items_done == result.items_total == len(release.spec.artifacts)
    assert result.bytes_done == result.bytes_total > 300_000
    assert len(snapshots) > 10 and snapshots == sorted(snapshots)

    # Exactly what the release needs: nothing else was fetched from upstream.
    paths = {r.path for r in upstream.requests}
    assert not any("23.0.8" in p or "metallb-0.14.3" in p or p.endswith("/3.6.0") for p in paths)

    server = await MirrorServer(tmp_path / "m").start()
    try:
        base = server.url
        # Debian: Release -> Packages (hash checked) -> pool files equal to upstream.
        status, body, _ = await get(http, f"{base}/debian/dists/stable/Release")
        assert status == 200
        hashes = release_hashes(parse_deb822(body.decode())[0])
        status, pkgs, _ = await get(http, f"{base}/debian/dists/stable/main/binary-amd64/Packages")
        assert hashes["main/binary-amd64/Packages"] == (sha(pkgs), len(pkgs))
        stanzas = parse_deb822(pkgs.decode())
        assert sorted((s["Package"], s["Version"]) for s in stanzas) == [
            ("containerd.io", "1.6.28-1"),
            ("docker-ee", "5:23.0.9~3-0~ubuntu-jammy"),
        ]
        for st in stanzas:
            status, deb, _ = await get(http, f"{base}/debian/{st['Filename']}")
            assert status == 200 and sha(deb) == st["SHA256"] and len(deb) == int(st["Size"])
            assert deb == upstream.files[f"/debian/{st['Filename']}"]
            assert deb.startswith(b"!<arch>\n")

        # Helm: index.yaml lists the mirrored charts only, digests match the bytes served.
        status, body, _ = await get(http, f"{base}/helm/index.yaml")
        index = yaml.safe_load(body)
        assert {n: [e["version"] for e in v] for n, v in index["entries"].items()} == {
            "metallb": ["0.13.12"],
            "cert-manager": ["1.13.3"],
        }
        for versions in index["entries"].values():
            entry = versions[0]
            status, tgz, _ = await get(http, f"{base}/helm/{entry['urls'][0]}")
            assert status == 200 and sha(tgz) == entry["digest"]
        status, binary, _ = await get(http, f"{base}/helm/{BINARY}")
        assert binary == upstream.files[f"/helm/{BINARY}"]
        status, _, _ = await get(http, f"{base}/helm/charts/metallb-0.14.3.tgz")
        assert status == 404

        # OCI: ping, manifest by tag with the upstream's digest, blobs by digest.
        status, _, headers = await get(http, f"{base}/v2/")
        assert status == 200 and headers["Docker-Distribution-API-Version"] == "registry/2.0"
        for name, media in [
            ("mirantis/ucp", OCI_MANIFEST),
            ("mirantis/ucp-etcd", DOCKER_MANIFEST),
            ("mirantis/ucp-agent", OCI_INDEX),
        ]:
            url = f"{base}/v2/{name}/manifests/3.7.0"
            status, body, headers = await get(http, url, headers={"Accept": ACCEPT})
            assert status == 200, (name, body)
            assert headers["Content-Type"].startswith(media)
            up_digest = upstream.images[name].tags["3.7.0"]
            assert headers["Docker-Content-Digest"] == f"sha256:{up_digest}"
            assert up_digest == sha(body)
            doc = json.loads(body)
            manifests = [doc]
            for child in doc.get("manifests", []):
                curl = f"{base}/v2/{name}/manifests/{child['digest']}"
                status, cbody, _ = await get(http, curl, headers={"Accept": ACCEPT})
                assert status == 200 and f"sha256:{sha(cbody)}" == child["digest"]
                manifests.append(json.loads(cbody))
            for m in manifests[1:] if doc.get("manifests") else manifests:
                for d in [m["config"], *m["layers"]]:
                    status, blob, headers = await get(http, f"{base}/v2/{name}/blobs/{d['digest']}")
                    assert status == 200 and f"sha256:{sha(blob)}" == d["digest"]
                    assert len(blob) == d["size"]
        status, body, _ = await get(http, f"{base}/v2/mirantis/ucp/manifests/3.6.0")
        assert status == 404 and json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        status, body, _ = await get(http, f"{base}/v2/mirantis/ucp/tags/list")
        assert json.loads(body) == {"name": "mirantis/ucp", "tags": ["3.7.0"]}

        # A second region mirroring from this one sees well-formed, verifiable indexes.
        downstream = [
            Upstream(type="debian", url=f"{base}/debian"),
            Upstream(type="helm", url=f"{base}/helm"),
            Upstream(type="oci", url=base),
        ]
        again = await mirror_release(release, downstream, tmp_path / "second")
        assert again.failures == {} and again.items_done == len(release.spec.artifacts)
    finally:
        await server.stop()


async def test_second_run_fetches_nothing(
    upstream: UpstreamCDN, release: ClusterRelease, tmp_path: Path
) -> None:
    await mirror_release(release, upstreams_of(upstream), tmp_path)
    before = len(upstream.requests)
    result = await mirror_release(release, upstreams_of(upstream), tmp_path)
    assert result.failures == {} and result.items_done == len(release.spec.artifacts)
    assert result.bytes_done == result.bytes_total > 0
    assert upstream.requests[before:] == []


async def test_missing_upstream_kind_and_unknown_versions_fail_per_artifact(
    upstream: UpstreamCDN, tmp_path: Path
) -> None:
    release = make_release(
        extra=[
            Artifact(type="deb", name="containerd.io", version="9.9.9"),
            Artifact(type="helm", name="stacklight", version="0.13.0"),
            Artifact(type="image", name="mirantis/nope", version="1.0"),
        ]
    )
    no_helm = [u for u in upstreams_of(upstream) if u.type != "helm"]
    result = await mirror_release(release, no_helm, tmp_path)
    f = result.failures
    assert "versions there: 1.6.28-1" in f["deb containerd.io=9.9.9"]
    assert f["helm stacklight=0.13.0"] == "no helm upstream configured for helm stacklight=0.13.0"
    assert "no helm upstream" in f["binary bin/lcm-ansible/lcm-ansible-1.38.0.tar.gz=1.38.0"]
    assert "/v2/mirantis/nope/manifests/1.0: HTTP 404" in f["image mirantis/nope:1.0"]
    # debs and images still made it
    assert result.items_done == 5
