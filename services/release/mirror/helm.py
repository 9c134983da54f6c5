"""Helm repository reader: ``index.yaml`` digests for charts, sha256 pins for binaries.

A chart artifact (``name``/``version``) is looked up in the repository's ``index.yaml``; its
``digest`` is the sha256 of the .tgz. The same CDN publishes binaries by path (the artifact
name is that path, e.g. ``bin/lcm-ansible/lcm-ansible-1.38.0.tar.gz``); their sha256 is the
release's pin or, when the release leaves it empty, the ``<path>.sha256`` file next to it.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urljoin

import aiohttp
import yaml

from services.release.mirror.errors import BadUpstreamData, ChecksumMismatch, NotInUpstream
from services.release.mirror.layout import Record, normalize_sha, safe_relpath
from services.release.mirror.resolve import RemoteFile, Resolved, fetch_bytes, join
from shared.models import Artifact, Upstream


def chart_filename(name: str, version: str) -> str:
    return f"{name}-{version}.tgz"


class HelmReader:
    """Resolves helm and binary artifacts against one Helm repository upstream."""

    def __init__(self, session: aiohttp.ClientSession, upstream: Upstream) -> None:
        self.session = session
        self.base = upstream.url.rstrip("/")
        self._index: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def _load_index(self) -> dict[str, Any]:
        async with self._lock:
            if self._index is None:
                url = f"{self.base}/index.yaml"
                raw, _ = await fetch_bytes(self.session, url)
                try:
                    doc = await asyncio.to_thread(yaml.safe_load, raw)
                except yaml.YAMLError as e:
                    raise BadUpstreamData(f"{url}: not valid YAML: {e}") from None
                if not isinstance(doc, dict) or not isinstance(doc.get("entries"), dict):
                    raise BadUpstreamData(f"{url}: no 'entries' map")
                self._index = doc
            return self._index

    async def resolve(self, artifact: Artifact) -> Resolved:
        if artifact.type == "binary":
            return await self._resolve_binary(artifact)
        index = await self._load_index()
        versions = index["entries"].get(artifact.name) or []
        entry = next((e for e in versions if str(e.get("version")) == artifact.version), None)
        if entry is None:
            known = ", ".join(sorted(str(e.get("version")) for e in versions)) or "none"
            raise NotInUpstream(
                f"chart {artifact.name} version {artifact.version} not in "
                f"{self.base}/index.yaml (versions there: {known})"
            )
        digest = normalize_sha(str(entry.get("digest", "")))
        urls = entry.get("urls") or []
        if not digest or not urls:
            raise BadUpstreamData(
                f"{self.base}/index.yaml: chart {artifact.name} {artifact.version} "
                "lacks a digest or urls"
            )
        if artifact.sha256 and normalize_sha(artifact.sha256) != digest:
            raise ChecksumMismatch(
                f"chart {artifact.name} {artifact.version} (release pin vs index digest)",
                expected=normalize_sha(artifact.sha256),
                actual=digest,
            )
        url = urljoin(f"{self.base}/index.yaml", str(urls[0]))
        fname = chart_filename(artifact.name, artifact.version)
        path = f"helm/charts/{fname}"
        chart = {k: v for k, v in entry.items() if k not in ("urls", "digest")}
        chart.update(urls=[f"charts/{fname}"], digest=digest)
        record = Record(type="helm", name=artifact.name, version=artifact.version, chart=chart)
        return Resolved(artifact, [RemoteFile(url=url, path=path, sha256=digest)], record)

    async def _resolve_binary(self, artifact: Artifact) -> Resolved:
        rel = safe_relpath(artifact.name)
        url = join(self.base, rel)
        if artifact.sha256:
            sha = normalize_sha(artifact.sha256)
        else:
            raw, _ = await fetch_bytes(self.session, f"{url}.sha256")
            words = raw.decode("ascii", "replace").split()
            if not words or len(words[0]) != 64:
                raise BadUpstreamData(f"{url}.sha256 does not hold a sha256 sum")
            sha = words[0].lower()
        path = f"helm/{rel}"
        record = Record(type="binary", name=artifact.name, version=artifact.version)
        return Resolved(artifact, [RemoteFile(url=url, path=path, sha256=sha)], record)
