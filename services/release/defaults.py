"""The release data the product starts with, and its loader into the store.

``data/`` holds one KaaSRelease and the ClusterReleases it supports as Kubernetes-style
YAML. ``ensure_default_releases`` creates whichever are missing and never overwrites an
existing object, so an operator's edits survive restarts.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from shared.models import ClusterRelease, KaaSRelease, Resource, ValidationError, convert
from shared.store.base import Store
from shared.store.errors import AlreadyExists

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).parent / "data"
_KINDS: dict[str, type[Resource]] = {"KaaSRelease": KaaSRelease, "ClusterRelease": ClusterRelease}


class ReleaseDataError(ValueError):
    """A release YAML file that does not describe a valid release."""


def load_file(path: Path) -> list[Resource]:
    """Every release object in one YAML file (multi-document allowed)."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        raise ReleaseDataError(f"{path}: not valid YAML: {e}") from None
    out: list[Resource] = []
    for doc in docs:
        kind = doc.get("kind") if isinstance(doc, dict) else None
        cls = _KINDS.get(kind or "")
        if cls is None:
            raise ReleaseDataError(f"{path}: expected KaaSRelease or ClusterRelease, got {kind!r}")
        try:
            out.append(convert(cls, doc))
        except ValidationError as e:
            raise ReleaseDataError(f"{path}: {e} (at {e.path})") from None
    return out


def load_dir(directory: Path = DATA_DIR) -> list[Resource]:
    objs: list[Resource] = []
    for path in sorted(directory.glob("*.yaml")):
        objs.extend(load_file(path))
    return objs


def cluster_release(name: str, directory: Path = DATA_DIR) -> ClusterRelease:
    """One default ClusterRelease by name (for the bundle CLI and tests)."""
    for obj in load_dir(directory):
        if isinstance(obj, ClusterRelease) and obj.metadata.name == name:
            return obj
    raise ReleaseDataError(f"no ClusterRelease named {name!r} in {directory}")


async def ensure_default_releases(store: Store, directory: Path = DATA_DIR) -> list[str]:
    """Create the default releases that are missing; return the names created."""
    created: list[str] = []
    # ClusterReleases first, so a KaaSRelease never points at a release not yet stored.
    objs = sorted(load_dir(directory), key=lambda o: o.kind != "ClusterRelease")
    for obj in objs:
        try:
            await store.create(obj)
        except AlreadyExists:
            continue
        created.append(f"{obj.kind}/{obj.metadata.name}")
        log.info("created default %s %s", obj.kind, obj.metadata.name)
    return created
