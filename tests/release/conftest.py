"""Fixtures of the release tests: a populated local upstream CDN and a release over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.release.mirror.copier import Progress, mirror_release
from shared.models import Artifact, ClusterRelease, ClusterReleaseSpec, ObjectMeta, Upstream
from tests.fakes.upstream import UpstreamCDN

DEB_CONTAINERD = ("containerd.io", "1.6.28-1")
DEB_DOCKER = ("docker-ee", "5:23.0.9~3-0~ubuntu-jammy")
CHART = ("metallb", "0.13.12")
BINARY = "bin/lcm-ansible/lcm-ansible-1.38.0.tar.gz"


@pytest.fixture
async def upstream() -> AsyncIterator[UpstreamCDN]:
    cdn = UpstreamCDN()
    cdn.add_deb(*DEB_CONTAINERD, payload=200_000)
    cdn.add_deb(*DEB_DOCKER, payload=30_000)
    cdn.add_deb("docker-ee", "5:23.0.8~1-0~ubuntu-jammy")  # listed, not in the release
    cdn.add_chart(*CHART, payload=20_000)
    cdn.add_chart("cert-manager", "1.13.3")
    cdn.add_chart("metallb", "0.14.3")  # listed, not in the release
    cdn.add_binary(BINARY, payload=50_000)
    cdn.add_image("mirantis/ucp", "3.7.0", layers=2, payload=40_000)
    cdn.add_image("mirantis/ucp-agent", "3.7.0", platforms=("amd64", "arm64"))
    cdn.add_image("mirantis/ucp-etcd", "3.7.0", docker=True)
    cdn.add_image("mirantis/ucp", "3.6.0")  # another tag, not in the release
    await cdn.start()
    yield cdn
    await cdn.stop()


def make_release(name: str = "mke-3-7-0", extra: list[Artifact] | None = None) -> ClusterRelease:
    arts = [
        Artifact(type="deb", name=DEB_CONTAINERD[0], version=DEB_CONTAINERD[1]),
        Artifact(type="deb", name=DEB_DOCKER[0], version=DEB_DOCKER[1]),
        Artifact(type="helm", name=CHART[0], version=CHART[1]),
        Artifact(type="helm", name="cert-manager", version="1.13.3"),
        Artifact(type="binary", name=BINARY, version="1.38.0"),
        Artifact(type="image", name="mirantis/ucp", version="3.7.0"),
        Artifact(type="image", name="mirantis/ucp-agent", version="3.7.0"),
        Artifact(type="image", name="mirantis/ucp-etcd", version="3.7.0"),
    ]
    return ClusterRelease(
        metadata=ObjectMeta(name=name),
        spec=ClusterReleaseSpec(
            version="3.7.0", mke_version="3.7.0", artifacts=arts + (extra or [])
        ),
    )


@pytest.fixture
def release() -> ClusterRelease:
    return make_release()


def upstreams_of(cdn: UpstreamCDN) -> list[Upstream]:
    return [
        Upstream(type="debian", url=cdn.debian_url),
        Upstream(type="helm", url=cdn.helm_url),
        Upstream(type="oci", url=cdn.url),
    ]


async def mirror_debs(cdn: UpstreamCDN, dest: Path, *,
                      keys: str = "") -> tuple[ClusterRelease, Progress]:
    """Mirror a release of just the two Debian packages from ``cdn`` (started and stopped
    here) into ``dest``; ``keys``: the upstream's ``signedBy``."""
    cdn.add_deb(*DEB_CONTAINERD)
    cdn.add_deb(*DEB_DOCKER)
    await cdn.start()
    try:
        debs = make_release()
        debs.spec.artifacts = [a for a in debs.spec.artifacts if a.type == "deb"]
        upstream = Upstream(type="debian", url=cdn.debian_url, signed_by=keys)
        return debs, await mirror_release(debs, [upstream], dest)
    finally:
        await cdn.stop()
