"""The compatibility matrix: which ClusterReleases a KaaSRelease supports, and upgrade paths.

A KaaSRelease (the management version) lists the ClusterReleases it can run, each with the
ClusterReleases it may be upgraded to. A ClusterRelease may itself declare
``allowedUpgrades``; when the KaaSRelease entry names none, those are used. A path is only
allowed when the KaaSRelease supports both ends, the target ClusterRelease exists, and the
target is not older than the current release. Everything here is pure: the LCM controller
and the API call ``check_upgrade`` before a Cluster's release changes, and the release
controller publishes ``available_upgrades`` per Cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from shared.models import ClusterRelease, KaaSRelease


class UpgradeNotAllowed(ValueError):
    """A requested cluster upgrade the matrix forbids; the message says why."""


def version_key(version: str) -> tuple[tuple[int, str], ...]:
    """Sort key for dotted versions ("3.7.10" > "3.7.9"); non-numeric parts compare as text."""
    parts = re.split(r"[.\-+]", version)
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in parts if p)


class Matrix:
    """One KaaSRelease and the ClusterReleases it may refer to, queried by name."""

    def __init__(self, kaas: KaaSRelease, releases: Iterable[ClusterRelease]) -> None:
        self.kaas = kaas
        self.releases: dict[str, ClusterRelease] = {r.metadata.name: r for r in releases}
        self._entries = {e.name: e for e in kaas.spec.supported_cluster_releases}

    def supported(self) -> list[ClusterRelease]:
        """ClusterReleases this KaaSRelease supports and that exist, oldest first."""
        found = [self.releases[n] for n in self._entries if n in self.releases]
        return sorted(found, key=lambda r: version_key(r.spec.version))

    def is_supported(self, name: str) -> bool:
        return name in self._entries and name in self.releases

    def missing(self) -> list[str]:
        """Names the KaaSRelease supports but no ClusterRelease object carries (bad data)."""
        return sorted(n for n in self._entries if n not in self.releases)

    def _declared(self, current: str) -> list[str]:
        entry = self._entries.get(current)
        if entry is not None and entry.available_upgrades:
            return list(entry.available_upgrades)
        release = self.releases.get(current)
        return list(release.spec.allowed_upgrades) if release else []

    def available_upgrades(self, current: str) -> list[str]:
        """Targets ``current`` may move to under this KaaSRelease, oldest first."""
        out = [t for t in self._declared(current) if self._why_not(current, t) is None]
        return sorted(set(out), key=lambda n: version_key(self.releases[n].spec.version))

    def check_upgrade(self, current: str, target: str) -> None:
        """Raise ``UpgradeNotAllowed`` unless ``current`` -> ``target`` is an allowed path."""
        reason = self._why_not(current, target)
        if reason is None and target not in self._declared(current):
            options = ", ".join(self.available_upgrades(current)) or "none"
            reason = (
                f"upgrade path {current} -> {target} is not allowed by KaaSRelease "
                f"{self.kaas.metadata.name} (allowed from {current}: {options})"
            )
        if reason is not None:
            raise UpgradeNotAllowed(reason)

    def _why_not(self, current: str, target: str) -> str | None:
        kaas = self.kaas.metadata.name
        if current == target:
            return f"cluster already runs ClusterRelease {target}"
        if target not in self.releases:
            return f"ClusterRelease {target} does not exist"
        if target not in self._entries:
            return f"ClusterRelease {target} is not supported by KaaSRelease {kaas}"
        if current not in self.releases:
            return f"current ClusterRelease {current} does not exist"
        cur_v = self.releases[current].spec.version
        tgt_v = self.releases[target].spec.version
        if version_key(tgt_v) < version_key(cur_v):
            return f"downgrade {current} ({cur_v}) -> {target} ({tgt_v}) is not allowed"
        return None


def supported(kaas: KaaSRelease, releases: Iterable[ClusterRelease]) -> list[ClusterRelease]:
    return Matrix(kaas, releases).supported()


def available_upgrades(
    kaas: KaaSRelease, releases: Iterable[ClusterRelease], current: str
) -> list[str]:
    return Matrix(kaas, releases).available_upgrades(current)


def check_upgrade(
    kaas: KaaSRelease, releases: Iterable[ClusterRelease], current: str, target: str
) -> None:
    Matrix(kaas, releases).check_upgrade(current, target)


def latest_kaas(kaas_releases: Iterable[KaaSRelease]) -> KaaSRelease | None:
    """The newest KaaSRelease: the one the management cluster runs."""
    items = list(kaas_releases)
    return max(items, key=lambda k: version_key(k.spec.version)) if items else None
