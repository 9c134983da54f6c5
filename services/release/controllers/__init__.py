"""Controllers of the release service: artifact mirrors and per-Cluster available upgrades."""

from services.release.controllers.mirror import ArtifactMirrorReconciler
from services.release.controllers.upgrades import (
    ALL_CLUSTERS,
    RELEASE_WATCHES,
    AvailableUpgradesReconciler,
)

__all__ = [
    "ALL_CLUSTERS",
    "RELEASE_WATCHES",
    "ArtifactMirrorReconciler",
    "AvailableUpgradesReconciler",
]
