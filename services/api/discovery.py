"""Kind names, plurals and short names, and the discovery documents built from them.

Pure data (no aiohttp) so the CLI resolves ``cl``/``machines``/``Cluster`` the same way.
"""

from __future__ import annotations

from typing import Any

from shared.models import ALL_KINDS, API_VERSION, GROUP, VERSION, Resource

SHORT_NAMES: dict[str, tuple[str, ...]] = {
    "Region": ("rg",),
    "Cluster": ("cl",),
    "Machine": ("ma",),
    "UpdateGroup": ("ug",),
    "MachinePool": ("mp",),
    "MachineHealthCheck": ("mhc",),
    "GracefulRebootRequest": ("grr",),
    "LCMCluster": ("lcmc",),
    "LCMMachine": ("lcmm",),
    "KaaSRelease": ("kaasr",),
    "ClusterRelease": ("cr",),
    "OpenStackCredential": ("osc",),
    "VsphereCredential": ("vsc",),
    "BareMetalHostCredential": ("bmhc",),
    "BareMetalHost": ("bmh",),
    "PublicKey": ("pk",),
    "AttachedCluster": ("ac",),
    "ArtifactMirror": ("am",),
}

VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def singular(cls: type[Resource]) -> str:
    return cls.KIND.lower()


def aliases(cls: type[Resource]) -> set[str]:
    return {cls.KIND.lower(), cls.PLURAL, singular(cls), *SHORT_NAMES.get(cls.KIND, ())}


def resolve(name: str) -> type[Resource] | None:
    """Kind class for a kind, plural, singular or short name (case-insensitive)."""
    wanted = name.lower().split(".", 1)[0]
    for cls in ALL_KINDS:
        if wanted in aliases(cls):
            return cls
    return None


def api_resource_list() -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for cls in ALL_KINDS:
        resources.append(
            {
                "name": cls.PLURAL,
                "singularName": singular(cls),
                "namespaced": cls.NAMESPACED,
                "kind": cls.KIND,
                "verbs": VERBS,
                "shortNames": list(SHORT_NAMES.get(cls.KIND, ())),
            }
        )
        resources.append(
            {
                "name": f"{cls.PLURAL}/status",
                "singularName": "",
                "namespaced": cls.NAMESPACED,
                "kind": cls.KIND,
                "verbs": ["get", "patch", "update"],
            }
        )
        if cls.SCALE:  # as kube-apiserver lists a CRD's scale subresource
            resources.append(
                {
                    "name": f"{cls.PLURAL}/scale",
                    "singularName": "",
                    "namespaced": cls.NAMESPACED,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": API_VERSION,
        "resources": resources,
    }


def api_group_list() -> dict[str, Any]:
    gv = {"groupVersion": API_VERSION, "version": VERSION}
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [{"name": GROUP, "versions": [gv], "preferredVersion": gv}],
    }
