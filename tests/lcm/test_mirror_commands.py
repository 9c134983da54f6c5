"""The commands an agent runs fetch what the regional mirror really serves.

A release is mirrored from the local upstream, the real ``MirrorServer`` serves it, and the
agent's state items for a control-plane node are built the way LCM builds them. Every URL
is then derived from ``commands_for`` output (apt source line, package names, image refs,
chart URLs), fetched the way apt/ctr/helm would, and compared byte for byte with upstream.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from services.lcm.agent.executor import commands_for
from services.lcm.items import release_items
from services.release.mirror.copier import mirror_release
from services.release.mirror.debian import parse_deb822, release_hashes
from services.release.mirror.oci import ACCEPT, INDEX_TYPES
from services.release.mirror.server import MirrorServer
from shared.models import ClusterRelease
from tests.fakes.upstream import UpstreamCDN
from tests.release.conftest import make_release, upstream, upstreams_of  # noqa: F401

NODE_ARCH = "amd64"  # the node's dpkg/containerd architecture


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
async def served(
    upstream: UpstreamCDN, tmp_path: Path  # noqa: F811 - the imported fixture
) -> AsyncIterator[tuple[ClusterRelease, MirrorServer]]:
    release = make_release()
    result = await mirror_release(release, upstreams_of(upstream), tmp_path / "mirror")
    assert result.failures == {}
    server = await MirrorServer(tmp_path / "mirror").start()
    try:
        yield release, server
    finally:
        await server.stop()


async def fetch(http: aiohttp.ClientSession, url: str, **kw: object) -> tuple[bytes, dict]:
    async with http.get(url, **kw) as r:  # type: ignore[arg-type]
        body = await r.read()
        assert r.status == 200, (url, r.status, body[:200])
        return body, dict(r.headers)


def apt_source(argv: list[str]) -> tuple[dict[str, str], str, str, list[str]]:
    """(options, base URL, suite, components) of the one-line source the host item writes."""
    assert argv[:2] == ["sh", "-c"]
    m = re.search(r"echo '(deb .*)' > /etc/apt/sources\.list\.d/\S+\.list$", argv[2])
    assert m, argv
    words = shlex.split(m.group(1))[1:]
    opts: dict[str, str] = {}
    if words[0].startswith("["):
        end = next(i for i, w in enumerate(words) if w.endswith("]"))
        for opt in " ".join(words[: end + 1]).strip("[]").split():
            k, _, v = opt.partition("=")
            opts[k] = v
        words = words[end + 1 :]
    return opts, words[0].rstrip("/"), words[1], words[2:]


async def test_agent_commands_fetch_what_the_mirror_serves(
    upstream: UpstreamCDN,  # noqa: F811 - the imported fixture
    served: tuple[ClusterRelease, MirrorServer],
) -> None:
    release, server = served
    items = {i.runner: i for i in release_items(release, "control-plane", mirror_url=server.url)}
    assert {"host", "packages", "images", "helm"} <= set(items)
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        # --- apt: source line -> (In)Release -> Packages (hash from Release) ---------------
        host_cmds = commands_for(items["host"])
        assert host_cmds[-1] == ["apt-get", "update"]
        opts, base, suite, comps = apt_source(host_cmds[0])
        # The mirror's Release is regenerated and unsigned, so apt must be told to trust it.
        assert opts.get("trusted") == "yes" or "signed-by" in opts, opts
        async with http.get(f"{base}/dists/{suite}/InRelease") as r:
            # apt prefers InRelease: if one is served it must sign this very Release.
            in_release_status = r.status
        release_doc, _ = await fetch(http, f"{base}/dists/{suite}/Release")
        assert in_release_status == 404, "an InRelease here would shadow the mirror's Release"
        hashes = release_hashes(parse_deb822(release_doc.decode())[0])
        stanzas = []
        for comp in comps:
            rel = f"{comp}/binary-{NODE_ARCH}/Packages"
            pkgs, _ = await fetch(http, f"{base}/dists/{suite}/{rel}")
            assert hashes[rel] == (sha(pkgs), len(pkgs))
            stanzas += parse_deb822(pkgs.decode())

        # --- apt-get install name=version: each resolves to a pool file with its bytes ----
        [install] = commands_for(items["packages"])
        assert install[:2] == ["apt-get", "install"]
        wanted = [a for a in install[2:] if not a.startswith("-")]
        assert len(wanted) == 2
        for spec in wanted:
            name, _, version = spec.partition("=")
            st = next(s for s in stanzas if s["Package"] == name and s["Version"] == version)
            deb, _ = await fetch(http, f"{base}/{st['Filename']}")
            assert sha(deb) == st["SHA256"] and len(deb) == int(st["Size"])
            assert deb == upstream.files[f"/debian/{st['Filename']}"]

        # --- ctr images pull: OCI v2 manifest by tag, platform manifest, config, layers ---
        pulls = commands_for(items["images"])
        assert len(pulls) == 3
        for argv in pulls:
            assert argv[:5] == ["ctr", "-n", "k8s.io", "images", "pull"]
            ref = argv[-1]
            scheme = "http" if "--plain-http" in argv else "https"
            registry, _, rest = ref.partition("/")
            name, _, tag = rest.rpartition(":")
            v2 = f"{scheme}://{registry}/v2/{name}"
            assert v2.startswith(server.url), "an HTTP mirror needs --plain-http"
            body, headers = await fetch(http, f"{v2}/manifests/{tag}", headers={"Accept": ACCEPT})
            assert headers["Docker-Content-Digest"] == f"sha256:{upstream.images[name].tags[tag]}"
            assert headers["Docker-Content-Digest"] == f"sha256:{sha(body)}"
            doc = json.loads(body)
            if doc["mediaType"] in INDEX_TYPES:
                child = next(
                    m for m in doc["manifests"] if m["platform"]["architecture"] == NODE_ARCH
                )
                body, _ = await fetch(
                    http, f"{v2}/manifests/{child['digest']}", headers={"Accept": ACCEPT}
                )
                assert f"sha256:{sha(body)}" == child["digest"]
                doc = json.loads(body)
            for d in [doc["config"], *doc["layers"]]:
                blob, _ = await fetch(http, f"{v2}/blobs/{d['digest']}")
                assert f"sha256:{sha(blob)}" == d["digest"] and len(blob) == d["size"]
                assert blob == upstream.blobs[d["digest"][7:]]

        # --- helm upgrade --install NAME URL: the chart archive, digest as in index.yaml --
        index, _ = await fetch(http, f"{server.url}/helm/index.yaml")
        entries = yaml.safe_load(index)["entries"]
        installs = commands_for(items["helm"])
        assert len(installs) == 2
        for argv in installs:
            assert argv[:3] == ["helm", "upgrade", "--install"]
            name, url = argv[3], argv[4]
            tgz, _ = await fetch(http, url)
            version = next(e["version"] for e in entries[name] if url.endswith(e["urls"][0]))
            digest = next(e["digest"] for e in entries[name] if e["version"] == version)
            assert sha(tgz) == digest
            assert tgz == upstream.files[f"/helm/charts/{name}-{version}.tgz"]
