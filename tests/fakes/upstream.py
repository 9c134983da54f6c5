"""A local upstream CDN speaking the real formats, for the artifact mirror tests.

One aiohttp server on 127.0.0.1 serves three upstreams:

- ``/debian``: an apt repository. ``dists/<suite>/Release`` lists the MD5Sum and SHA256 of
  ``main/binary-amd64/Packages`` (and ``.gz``); each stanza carries ``Filename``/``Size``/
  ``SHA256`` of a real ar-format .deb under ``pool/``. Like a real archive it also serves
  ``InRelease`` (the Release clearsigned, RFC 4880 armor and dash-escaping) and
  ``Release.gpg`` (an armored detached signature), unless built with ``signed=False``.
  Built with a ``signer`` (``tests.fakes.openpgp``) the signatures are real, made by gpg
  with the signer's key; otherwise the packets are placeholders in the right armor (for a
  mirror with no ``signedBy``, which carries signatures without verifying them). ``Date``
  is fixed per publish, so Release and InRelease fetched a second apart agree.
- ``/helm``: a Helm repository, ``index.yaml`` with a ``digest`` per chart version and real
  chart .tgz files, plus binaries by path with ``<path>.sha256`` files beside them.
- ``/v2``: an OCI distribution registry (read API): ``/v2/`` ping, manifests by tag or
  digest with ``Docker-Content-Digest`` and the manifest's content type (honouring
  ``Accept``), blobs by digest, OCI error bodies on 404. Manifests reference a config and
  gzipped tar layers; images may be multi-platform indexes.

Every file endpoint honours ``Range: bytes=N-`` (206 + Content-Range), as real CDNs do.
Faults for tests: ``corrupt(path)`` serves different bytes than the indexes promise,
``truncate_once(path)`` drops the connection halfway through the next response, and
``stall(path)`` sends half and then waits until the returned event is set, and
``lag_inrelease()`` freezes InRelease at the current Release while later ``add_*`` calls
change Release (a half-published mirror). Every request is appended to ``requests``
(method, path, Range header).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import json
import os
import tarfile
import time
from dataclasses import dataclass, field

import yaml
from aiohttp import web

from tests.fakes.openpgp import Signer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 0
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _ar(members: dict[str, bytes]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members.items():
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n"
        out.append(header.encode())
        out.append(data + (b"\n" if len(data) % 2 else b""))
    return b"".join(out)


def make_deb(name: str, version: str, arch: str, payload: int) -> bytes:
    control = f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\n".encode()
    return _ar(
        {
            "debian-binary": b"2.0\n",
            "control.tar.gz": _tar_gz({"./control": control}),
            "data.tar.gz": _tar_gz({f"./usr/share/{name}/blob": os.urandom(payload)}),
        }
    )


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def _armored_signature(text: bytes) -> str:
    """An ASCII-armored signature block around a placeholder packet derived from ``text``."""
    packet = b"\x89\x02\x33\x04\x00\x01\x0a\x00" + hashlib.sha512(text).digest() * 4
    body = base64.b64encode(packet).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    crc = base64.b64encode(_crc24(packet).to_bytes(3, "big")).decode()
    return "-----BEGIN PGP SIGNATURE-----\n\n" + "\n".join(lines) + (
        f"\n={crc}\n-----END PGP SIGNATURE-----\n"
    )


@dataclass
class Req:
    method: str
    path: str
    range: str | None


@dataclass
class _Image:
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # digest -> body, type
    tags: dict[str, str] = field(default_factory=dict)  # tag -> digest
    blobs: set[str] = field(default_factory=set)


class UpstreamCDN:
    """The fake upstream; build content with ``add_*`` before or after ``start()``."""

    def __init__(
        self,
        *,
        suite: str = "stable",
        component: str = "main",
        arch: str = "amd64",
        signed: bool = True,
        signer: Signer | None = None,
    ) -> None:
        self.suite, self.component, self.arch = suite, component, arch
        self.signed = signed
        self.signer = signer  # real signatures; placeholders when None
        self.date = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime())
        self._lagging_inrelease: bytes | None = None
        self.files: dict[str, bytes] = {}  # URL path -> bytes (debs, charts, binaries)
        self.stanzas: list[dict[str, str]] = []
        self.charts: dict[str, list[dict]] = {}
        self.images: dict[str, _Image] = {}
        self.blobs: dict[str, bytes] = {}  # hex digest -> bytes
        self.requests: list[Req] = []
        self._corrupt: set[str] = set()
        self._truncate: set[str] = set()
        self._stall: dict[str, asyncio.Event] = {}
        self.stalled: dict[str, asyncio.Event] = {}
        self._all_stalls: list[asyncio.Event] = []
        self.inflight = 0
        self.max_inflight = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- content ----------------------------------------------------------------------

    def add_deb(self, name: str, version: str, *, payload: int = 4096, arch: str = "") -> str:
        arch = arch or self.arch
        data = make_deb(name, version, arch, payload)
        fversion = version.split(":", 1)[-1]
        fname = f"pool/{self.component}/{name[0]}/{name}/{name}_{fversion}_{arch}.deb"
        self.files[f"/debian/{fname}"] = data
        self.stanzas.append(
            {
                "Package": name,
                "Version": version,
                "Architecture": arch,
                "Maintainer": "Mirantis <support@mirantis.com>",
                "Installed-Size": str(payload // 1024 + 1),
                "Filename": fname,
                "Size": str(len(data)),
                "MD5sum": hashlib.md5(data).hexdigest(),
                "SHA1": hashlib.sha1(data).hexdigest(),
                "SHA256": sha256(data),
                "Section": "admin",
                "Priority": "optional",
                "Description": f"{name} package\n test fixture for the artifact mirror",
            }
        )
        return f"/debian/{fname}"

    def add_chart(self, name: str, version: str, *, payload: int = 4096) -> str:
        chart_yaml = yaml.safe_dump(
            {"apiVersion": "v2", "name": name, "version": version, "appVersion": version}
        ).encode()
        data = _tar_gz(
            {
                f"{name}/Chart.yaml": chart_yaml,
                f"{name}/values.yaml": b"replicaCount: 1\n",
                f"{name}/templates/blob.bin": os.urandom(payload),
            }
        )
        path = f"/helm/charts/{name}-{version}.tgz"
        self.files[path] = data
        self.charts.setdefault(name, []).append(
            {
                "apiVersion": "v2",
                "name": name,
                "version": version,
                "appVersion": version,
                "created": "2026-11-25T10:00:00Z",
                "description": f"{name} chart",
                "digest": sha256(data),
                "urls": [f"charts/{name}-{version}.tgz"],
            }
        )
        return path

    def add_binary(self, path: str, *, payload: int = 4096) -> str:
        data = _tar_gz({path.rsplit("/", 1)[-1] + ".bin": os.urandom(payload)})
        self.files[f"/helm/{path}"] = data
        self.files[f"/helm/{path}.sha256"] = f"{sha256(data)}  {path.rsplit('/', 1)[-1]}\n".encode()
        return f"/helm/{path}"

    def _blob(self, data: bytes) -> dict:
        digest = sha256(data)
        self.blobs[digest] = data
        return {"digest": f"sha256:{digest}", "size": len(data)}

    def _image_manifest(
        self, img: _Image, *, layers: int, payload: int, docker: bool, arch: str
    ) -> tuple[bytes, str]:
        layer_docs = []
        diff_ids = []
        for i in range(layers):
            raw = os.urandom(payload)
            tgz = _tar_gz({f"layer{i}/data": raw})
            diff_ids.append("sha256:" + sha256(gzip.decompress(tgz)))
            d = self._blob(tgz)
            d["mediaType"] = DOCKER_LAYER if docker else OCI_LAYER
            layer_docs.append(d)
            img.blobs.add(d["digest"][7:])
        config = json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                "config": {"Entrypoint": ["/bin/app"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ).encode()
        cfg = self._blob(config)
        cfg["mediaType"] = DOCKER_CONFIG if docker else OCI_CONFIG
        img.blobs.add(cfg["digest"][7:])
        media = DOCKER_MANIFEST if docker else OCI_MANIFEST
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": media, "config": cfg, "layers": layer_docs},
            indent=3,
        ).encode()
        img.manifests[sha256(body)] = (body, media)
        return body, media

    def add_image(
        self,
        name: str,
        tag: str,
        *,
        layers: int = 2,
        payload: int = 8192,
        docker: bool = False,
        platforms: tuple[str, ...] = (),
    ) -> str:
        """Publish an image; with ``platforms`` it is an OCI index. Returns the tag digest."""
        img = self.images.setdefault(name, _Image())
        if platforms:
            children = []
            for arch in platforms:
                body, media = self._image_manifest(
                    img, layers=layers, payload=payload, docker=False, arch=arch
                )
                children.append(
                    {
                        "mediaType": media,
                        "digest": f"sha256:{sha256(body)}",
                        "size": len(body),
                        "platform": {"architecture": arch, "os": "linux"},
                    }
                )
            body = json.dumps(
                {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
            ).encode()
            img.manifests[sha256(body)] = (body, OCI_INDEX)
        else:
            body, _ = self._image_manifest(
                img, layers=layers, payload=payload, docker=docker, arch=self.arch
            )
        img.tags[tag] = sha256(body)
        return f"sha256:{sha256(body)}"

    def blob_path(self, name: str, digest: str) -> str:
        return f"/v2/{name}/blobs/{digest}"

    # --- faults -----------------------------------------------------------------------

    def corrupt(self, path: str) -> None:
        self._corrupt.add(path)

    def truncate_once(self, path: str) -> None:
        self._truncate.add(path)

    def stall(self, path: str) -> asyncio.Event:
        """Next GET of ``path`` sends half, sets ``stalled[path]``, waits for the event."""
        ev = self._stall[path] = asyncio.Event()
        self._all_stalls.append(ev)
        self.stalled[path] = asyncio.Event()
        return ev

    def gets(self, path: str) -> list[Req]:
        return [r for r in self.requests if r.method == "GET" and r.path == path]

    # --- indexes ----------------------------------------------------------------------

    def packages(self) -> bytes:
        parts = []
        for st in self.stanzas:
            lines = []
            for k, v in st.items():
                first, *rest = v.split("\n")
                lines.append(f"{k}: {first}")
                lines.extend(f" {r}" for r in rest)
            parts.append("\n".join(lines) + "\n")
        return "\n".join(parts).encode()

    def release(self) -> bytes:
        pkgs = self.packages()
        pkgs_gz = gzip.compress(pkgs, mtime=0)
        rel = f"{self.component}/binary-{self.arch}/Packages"
        entries = [(rel, pkgs), (f"{rel}.gz", pkgs_gz)]
        lines = [
            "Origin: Mirantis",
            "Label: Mirantis",
            f"Suite: {self.suite}",
            f"Codename: {self.suite}",
            f"Date: {self.date}",
            f"Architectures: {self.arch}",
            f"Components: {self.component}",
            "Description: Mirantis Container Cloud packages",
            "MD5Sum:",
        ]
        lines += [f" {hashlib.md5(d).hexdigest()} {len(d):>16} {p}" for p, d in entries]
        lines.append("SHA256:")
        lines += [f" {sha256(d)} {len(d):>16} {p}" for p, d in entries]
        return ("\n".join(lines) + "\n").encode()

    def inrelease(self) -> bytes:
        """The Release, clearsigned (or the frozen one after ``lag_inrelease()``)."""
        text = (self._lagging_inrelease or self.release()).decode().rstrip("\n")
        if self.signer is not None:
            return self.signer.clearsign(text.encode() + b"\n")
        escaped = "\n".join(f"- {ln}" if ln.startswith("-") else ln for ln in text.split("\n"))
        head = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
        return (head + escaped + "\n" + _armored_signature(text.encode())).encode()

    def release_gpg(self) -> bytes:
        if self.signer is not None:
            return self.signer.detach_sign(self.release())
        return _armored_signature(self.release()).encode()

    def lag_inrelease(self) -> None:
        self._lagging_inrelease = self.release()

    def index_yaml(self) -> bytes:
        return yaml.safe_dump(
            {"apiVersion": "v1", "entries": self.charts, "generated": "2026-11-25T10:00:00Z"}
        ).encode()

    # --- server -----------------------------------------------------------------------

    async def start(self) -> UpstreamCDN:
        app = web.Application()
        app.middlewares.append(self._log)
        dist = f"/debian/dists/{self.suite}"
        rel = f"{self.component}/binary-{self.arch}/Packages"
        docs = {
            f"{dist}/Release": self.release,
            f"{dist}/InRelease": self.inrelease,
            f"{dist}/Release.gpg": self.release_gpg,
            f"{dist}/{rel}": self.packages,
            f"{dist}/{rel}.gz": lambda: gzip.compress(self.packages(), mtime=0),
            "/helm/index.yaml": self.index_yaml,
        }

        async def doc(request: web.Request) -> web.StreamResponse:
            if not self.signed and request.path.endswith(("/InRelease", "/Release.gpg")):
                raise web.HTTPNotFound(text="404 page not found\n")
            return await self._send(request, request.path, docs[request.path](), "text/plain")

        for path in docs:
            app.router.add_get(path, doc)
        app.router.add_get("/v2/", self._ping)
        app.router.add_route("*", "/v2/{name:.+}/manifests/{ref}", self._manifest)
        app.router.add_route("*", "/v2/{name:.+}/blobs/{digest}", self._blob_get)
        app.router.add_get("/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        for ev in self._all_stalls:
            ev.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def debian_url(self) -> str:
        return f"{self.url}/debian"

    @property
    def helm_url(self) -> str:
        return f"{self.url}/helm"

    @web.middleware
    async def _log(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        self.requests.append(Req(request.method, request.path, request.headers.get("Range")))
        return await handler(request)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        data = self.files.get(request.path)
        if data is None:
            raise web.HTTPNotFound(text="404 page not found\n")
        ctype = "application/gzip" if request.path.endswith(("gz", ".tgz")) else (
            "application/vnd.debian.binary-package"
            if request.path.endswith(".deb")
            else "application/octet-stream"
        )
        return await self._send(request, request.path, data, ctype)

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({}, headers={"Docker-Distribution-API-Version": "registry/2.0"})

    def _oci_error(self, code: str, message: str, status: int = 404) -> web.Response:
        return web.json_response(
            {"errors": [{"code": code, "message": message, "detail": None}]},
            status=status,
            headers={"Docker-Distribution-API-Version": "registry/2.0"},
        )

    async def _manifest(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return self._oci_error("UNSUPPORTED", "read-only registry", 405)
        img = self.images.get(request.match_info["name"])
        if img is None:
            return self._oci_error("NAME_UNKNOWN", "repository name not known to registry")
        ref = request.match_info["ref"]
        digest = ref[7:] if ref.startswith("sha256:") else img.tags.get(ref, "")
        found = img.manifests.get(digest)
        if found is None:
            return self._oci_error("MANIFEST_UNKNOWN", "manifest unknown")
        body, media = found
        accept = ",".join(request.headers.getall("Accept", []))
        if accept and media not in accept and "*/*" not in accept:
            return self._oci_error("MANIFEST_UNKNOWN", f"manifest type {media} not accepted")
        headers = {
            "Docker-Content-Digest": f"sha256:{digest}",
            "Docker-Distribution-API-Version": "registry/2.0",
        }
        return await self._send(request, request.path, body, media, headers)

    async def _blob_get(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return self._oci_error("UNSUPPORTED", "read-only registry", 405)
        img = self.images.get(request.match_info["name"])
        if img is None:
            return self._oci_error("NAME_UNKNOWN", "repository name not known to registry")
        digest = request.match_info["digest"]
        hexd = digest[7:] if digest.startswith("sha256:") else ""
        if hexd not in img.blobs:
            return self._oci_error("BLOB_UNKNOWN", "blob unknown to registry")
        headers = {
            "Docker-Content-Digest": digest,
            "Docker-Distribution-API-Version": "registry/2.0",
        }
        return await self._send(
            request, request.path, self.blobs[hexd], "application/octet-stream", headers
        )

    async def _send(
        self,
        request: web.Request,
        key: str,
        data: bytes,
        ctype: str,
        headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        if key in self._corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        status, start = 200, 0
        hdrs = {"Accept-Ranges": "bytes", **(headers or {})}
        rng = request.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data):
                hdrs["Content-Range"] = f"bytes */{len(data)}"
                return web.Response(status=416, headers=hdrs)
            status = 206
            hdrs["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            return await self._write(request, key, body, status, hdrs, ctype)
        finally:
            self.inflight -= 1

    async def _write(
        self,
        request: web.Request,
        key: str,
        body: bytes,
        status: int,
        hdrs: dict[str, str],
        ctype: str,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=status, headers=hdrs)
        resp.content_type = ctype
        resp.content_length = len(body)
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        if key in self._truncate:
            self._truncate.discard(key)
            await resp.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.close()
            return resp
        if key in self._stall:
            ev = self._stall.pop(key)
            await resp.write(body[: len(body) // 2])
            self.stalled[key].set()
            await ev.wait()
            await resp.write(body[len(body) // 2 :])
            await resp.write_eof()
            return resp
        await resp.write(body)
        await resp.write_eof()
        return resp
