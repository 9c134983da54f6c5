"""The regional mirror's HTTP server: what agents in a region download from.

Serves the mirror directory in the three layouts agents already speak:

- ``/debian/dists/<suite>/Release`` and ``.../<component>/binary-<arch>/Packages`` are
  regenerated from the mirrored deb records (so they list exactly what was mirrored, and
  are unsigned: agents' apt sources say ``[trusted=yes]``), ``/debian/pool/...`` serves the
  files, and ``/debian/upstream/<suite>/<snapshot>/`` the upstream's own Release,
  InRelease, Release.gpg and Packages as copied (provenance; see ``debian.py``);
- ``/helm/index.yaml`` is regenerated from the mirrored chart records; ``/helm/...`` serves
  charts and binaries;
- ``/v2/`` is the OCI distribution read API: ping, manifests by tag or digest, blobs by
  digest, tags list, with ``Docker-Content-Digest`` and OCI error bodies.

Only artifacts whose record exists are visible; partial downloads (``.part``) never are.
Indexes are rebuilt when the record directories change.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from aiohttp import web

from services.release.mirror.layout import MirrorDir, normalize_sha, safe_relpath
from services.release.mirror.oci import MANIFEST_TYPES, blob_path
from shared.webserve import start_site

log = logging.getLogger(__name__)

REGISTRY_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0"}


@dataclass
class _Index:
    stamp: tuple[int, ...] = ()
    # (suite, component, arch) -> Packages text
    packages: dict[tuple[str, str, str], bytes] = field(default_factory=dict)
    helm_index: bytes = b""
    # visible files (relative paths) under debian/ and helm/
    files: set[str] = field(default_factory=set)
    # binaries: path -> sha256, served as ``<path>.sha256`` like the upstream CDN does
    binary_sums: dict[str, str] = field(default_factory=dict)
    # repository -> tag -> manifest digest hex; repository -> visible blob hexes
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    repo_blobs: dict[str, set[str]] = field(default_factory=dict)


class MirrorServer:
    """aiohttp application over one mirror directory; ``start()`` binds it."""

    def __init__(self, mirror_dir: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.mirror = MirrorDir(mirror_dir)
        self.host, self.port = host, port
        self._index = _Index()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/debian/dists/{suite}/Release", self._release)
        app.router.add_get("/debian/dists/{suite}/{component}/binary-{arch}/Packages",
                           self._packages)
        app.router.add_get("/debian/dists/{suite}/{component}/binary-{arch}/Packages.gz",
                           self._packages_gz)
        app.router.add_get("/helm/index.yaml", self._helm_index)
        app.router.add_get("/v2/", self._ping)
        app.router.add_get("/v2/{name:.+}/tags/list", self._tags)
        app.router.add_get("/v2/{name:.+}/manifests/{ref}", self._manifest)
        app.router.add_get("/v2/{name:.+}/blobs/{digest}", self._blob)
        app.router.add_get("/{area:debian|helm}/{path:.+}", self._file)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def start(self) -> MirrorServer:
        self._runner, port = await start_site(self.app(), self.host, self.port)
        self.url = f"http://{self.host}:{port}"
        log.info("regional mirror of %s serving on %s", self.mirror.root, self.url)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- index ------------------------------------------------------------------------

    def index(self) -> _Index:
        stamp = self.mirror.records_stamp()
        if stamp != self._index.stamp:
            self._index = self._build(stamp)
        return self._index

    def _build(self, stamp: tuple[int, ...]) -> _Index:
        idx = _Index(stamp=stamp)
        stanzas: dict[tuple[str, str, str], list[str]] = {}
        entries: dict[str, list[dict]] = {}
        for rec in self.mirror.records():
            if rec.type in ("deb", "helm", "binary"):
                idx.files.update(f.path for f in rec.files)
            if rec.type == "binary":
                idx.binary_sums.update((f.path, f.sha256) for f in rec.files)
            if rec.type == "deb":
                key = (rec.suite, rec.component, rec.architecture)
                stanzas.setdefault(key, []).append(rec.stanza)
            elif rec.type == "helm":
                entries.setdefault(rec.name, []).append(rec.chart)
            elif rec.type == "image":
                idx.tags.setdefault(rec.name, {})[rec.version] = normalize_sha(rec.digest)
                blobs = idx.repo_blobs.setdefault(rec.name, set())
                blobs.update(f.sha256 for f in rec.files)
        idx.packages = {k: "\n".join(sorted(v)).encode() for k, v in stanzas.items()}
        for versions in entries.values():
            versions.sort(key=lambda e: str(e.get("version")), reverse=True)
        idx.helm_index = yaml.safe_dump(
            {"apiVersion": "v1", "entries": entries, "generated": _rfc3339()}
        ).encode()
        return idx

    # --- debian -----------------------------------------------------------------------

    def _release_doc(self, suite: str) -> bytes | None:
        idx = self.index()
        mine = {k: v for k, v in idx.packages.items() if k[0] == suite}
        if not mine:
            return None
        comps = sorted({k[1] for k in mine})
        archs = sorted({k[2] for k in mine})
        files: list[tuple[str, bytes]] = []
        for (_, comp, arch), text in sorted(mine.items()):
            files.append((f"{comp}/binary-{arch}/Packages", text))
            files.append((f"{comp}/binary-{arch}/Packages.gz", gzip.compress(text, mtime=0)))
        lines = [
            "Origin: Container Cloud regional mirror",
            "Label: Container Cloud",
            f"Suite: {suite}",
            f"Codename: {suite}",
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}",
            f"Architectures: {' '.join(archs)}",
            f"Components: {' '.join(comps)}",
            "SHA256:",
        ]
        lines += [f" {hashlib.sha256(d).hexdigest()} {len(d):>16} {p}" for p, d in files]
        return ("\n".join(lines) + "\n").encode()

    async def _release(self, request: web.Request) -> web.Response:
        doc = self._release_doc(request.match_info["suite"])
        if doc is None:
            raise web.HTTPNotFound(text="no such suite on this mirror\n")
        return web.Response(body=doc, content_type="text/plain")

    def _packages_text(self, request: web.Request) -> bytes:
        m = request.match_info
        text = self.index().packages.get((m["suite"], m["component"], m["arch"]))
        if text is None:
            raise web.HTTPNotFound(text="no such index on this mirror\n")
        return text

    async def _packages(self, request: web.Request) -> web.Response:
        return web.Response(body=self._packages_text(request), content_type="text/plain")

    async def _packages_gz(self, request: web.Request) -> web.Response:
        body = gzip.compress(self._packages_text(request), mtime=0)
        return web.Response(body=body, content_type="application/gzip")

    # --- helm and plain files -----------------------------------------------------------

    async def _helm_index(self, request: web.Request) -> web.Response:
        return web.Response(body=self.index().helm_index, content_type="text/yaml")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        try:
            rel = safe_relpath(f"{request.match_info['area']}/{request.match_info['path']}")
        except ValueError:
            raise web.HTTPNotFound() from None
        idx = self.index()
        if rel.endswith(".sha256") and rel[:-7] in idx.binary_sums:
            base = rel[:-7].rsplit("/", 1)[-1]
            return web.Response(text=f"{idx.binary_sums[rel[:-7]]}  {base}\n")
        if rel not in idx.files:
            raise web.HTTPNotFound(text="not mirrored\n")
        return web.FileResponse(self.mirror.path(rel))

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    # --- OCI ------------------------------------------------------------------------------

    @staticmethod
    def _oci_error(code: str, message: str, status: int = 404) -> web.Response:
        return web.json_response(
            {"errors": [{"code": code, "message": message}]}, status=status,
            headers=REGISTRY_HEADERS,
        )

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({}, headers=REGISTRY_HEADERS)

    async def _tags(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        tags = self.index().tags.get(name)
        if tags is None:
            return self._oci_error("NAME_UNKNOWN", f"repository {name} not known to this mirror")
        return web.json_response({"name": name, "tags": sorted(tags)}, headers=REGISTRY_HEADERS)

    async def _manifest(self, request: web.Request) -> web.StreamResponse:
        name, ref = request.match_info["name"], request.match_info["ref"]
        idx = self.index()
        tags = idx.tags.get(name)
        if tags is None:
            return self._oci_error("NAME_UNKNOWN", f"repository {name} not known to this mirror")
        if ref.startswith("sha256:"):
            hexd = normalize_sha(ref)
            if hexd not in idx.repo_blobs.get(name, set()):
                return self._oci_error("MANIFEST_UNKNOWN", f"manifest {ref} unknown")
        elif ref in tags:
            hexd = tags[ref]
        else:
            return self._oci_error("MANIFEST_UNKNOWN", f"tag {ref} unknown")
        try:
            body = self.mirror.path(blob_path(hexd)).read_bytes()
            media = str(json.loads(body).get("mediaType", ""))
        except (OSError, ValueError):
            return self._oci_error("MANIFEST_UNKNOWN", f"manifest {ref} unknown")
        if media not in MANIFEST_TYPES:
            return self._oci_error("MANIFEST_UNKNOWN", f"{ref} is not a manifest")
        accept = ",".join(request.headers.getall("Accept", []))
        if accept and media not in accept and "*/*" not in accept:
            return self._oci_error("MANIFEST_UNKNOWN", f"manifest type {media} not accepted")
        headers = {**REGISTRY_HEADERS, "Docker-Content-Digest": f"sha256:{hexd}"}
        return web.Response(body=body, content_type=media, headers=headers)

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        name, digest = request.match_info["name"], request.match_info["digest"]
        hexd = normalize_sha(digest)
        if name not in self.index().tags:
            return self._oci_error("NAME_UNKNOWN", f"repository {name} not known to this mirror")
        if not digest.startswith("sha256:") or hexd not in self.index().repo_blobs.get(name, ()):
            return self._oci_error("BLOB_UNKNOWN", f"blob {digest} unknown to this mirror")
        resp = web.FileResponse(self.mirror.path(blob_path(hexd)), headers={
            **REGISTRY_HEADERS, "Docker-Content-Digest": f"sha256:{hexd}",
            "Content-Type": "application/octet-stream",
        })
        return resp


def _rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
