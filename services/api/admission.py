"""Admission checks that need other objects: refused writes never reach the store.

A Cluster may only name a ClusterRelease the management's KaaSRelease supports, and a
release change must be an upgrade path the compatibility matrix allows. The LCM
controller checks again (it also sees writes that bypass the API); this check gives the
user a 422 naming the field instead of a condition to discover later.
"""

from __future__ import annotations

from services.api.errors import ApiError
from services.release.compat import Matrix, UpgradeNotAllowed, latest_kaas
from shared.models import Cluster, ClusterRelease, KaaSRelease, Resource
from shared.store import Store

RELEASE_FIELD = "spec.release"


async def admit(store: Store, obj: Resource, stored: Resource | None = None) -> None:
    if isinstance(obj, Cluster):
        await _cluster(store, obj, stored if isinstance(stored, Cluster) else None)


def _invalid(obj: Resource, message: str) -> ApiError:
    return ApiError(
        422,
        f"{obj.kind} {obj.metadata.name!r} is invalid: {RELEASE_FIELD}: {message}",
        causes=[{"field": RELEASE_FIELD, "message": message}],
    )


async def _cluster(store: Store, obj: Cluster, stored: Cluster | None) -> None:
    target = obj.spec.release
    if stored is not None and stored.spec.release == target:
        return
    kaas = latest_kaas(await store.list_all(KaaSRelease))
    if kaas is None:
        return  # no release data loaded yet: nothing to judge against
    matrix = Matrix(kaas, await store.list_all(ClusterRelease))
    if stored is None:
        if not matrix.is_supported(target):
            options = ", ".join(r.metadata.name for r in matrix.supported()) or "none"
            raise _invalid(obj, f"ClusterRelease {target!r} is not supported by KaaSRelease "
                                f"{kaas.metadata.name} (supported: {options})")
        return
    current = stored.status.release or stored.spec.release
    if target == current:
        return  # taking back an upgrade that has not started
    try:
        matrix.check_upgrade(current, target)
    except UpgradeNotAllowed as e:
        raise _invalid(obj, str(e)) from None
