"""Deletes that would strand what depends on the object are refused (409, naming it).

- the last control-plane Machine of a Cluster that stays (the Cluster can go, with it);
- an OpenStack/vSphere credential a Cluster names, or that a Machine's node was made with
  (the provider deletes a node with the credential recorded on its Machine);
- a BareMetalHostCredential hosts use;
- a BareMetalHost a Machine has claimed (its node would run on unseen, and the provider
  would claim another host for the Machine);
- a ClusterRelease that clusters run or are moving to.

Kubernetes answers such deletes with a validating webhook; here the gateway is the API.
"""

from __future__ import annotations

from services.api.errors import ApiError
from shared.models import (
    MACHINE_LABEL,
    TARGET_ANNOTATION,
    BareMetalHost,
    BareMetalHostCredential,
    Cluster,
    ClusterRelease,
    Machine,
    OpenStackCredential,
    Resource,
    VsphereCredential,
)
from shared.store import NotFound, Store


class DeleteGuards:
    """``await guards(kind, name, namespace)`` raises a 409 ``ApiError`` for a delete that
    would strand something."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def __call__(self, cls: type[Resource], name: str, namespace: str | None) -> None:
        """Refuse (409) a delete that would strand what depends on the object."""
        if cls is Machine:
            await self._last_manager(name, namespace)
        elif cls in (OpenStackCredential, VsphereCredential):
            await self._cloud_credential_in_use(cls, name, namespace)
        elif cls is BareMetalHost:
            await self._claimed_host(name, namespace)
        elif cls is ClusterRelease:
            clusters = await self.store.list_all(
                Cluster, where=lambda c: name in (c.spec.release, c.status.release))
            _refuse_in_use(cls, name, "Cluster",
                           [f"{c.metadata.namespace}/{c.metadata.name}" for c in clusters],
                           "their nodes' state items come from it")
        elif cls is BareMetalHostCredential:
            hosts = await self.store.list_all(
                BareMetalHost, namespace, where=lambda h: h.spec.bmc.credentials_name == name)
            _refuse_in_use(cls, name, "BareMetalHost", [h.metadata.name for h in hosts],
                           "its hosts' BMCs could no longer be reached")

    async def _cloud_credential_in_use(
        self, cls: type[Resource], name: str, namespace: str | None
    ) -> None:
        """Clusters naming the credential, and Machines whose nodes were made with it (the
        provider deletes a node with the credential that made it, recorded on the Machine,
        also after its Cluster is gone)."""
        provider = "openstack" if cls is OpenStackCredential else "vsphere"
        clusters = await self.store.list_all(
            Cluster, namespace,
            where=lambda c: c.spec.provider == provider and c.spec.credential == name)
        _refuse_in_use(cls, name, "Cluster", [c.metadata.name for c in clusters],
                       "their machines could no longer be made or deleted")
        machines = await self.store.list_all(
            Machine, namespace,
            where=lambda m: getattr(m.spec, provider) is not None
            and m.metadata.annotations.get(TARGET_ANNOTATION) == name)
        _refuse_in_use(cls, name, "Machine", [m.metadata.name for m in machines],
                       "their nodes could no longer be deleted")

    async def _claimed_host(self, name: str, namespace: str | None) -> None:
        """A host a Machine has claimed: gone from the store, its node would run on unseen
        and the Machine's provider would claim another host for it (a second node)."""
        try:
            host = await self.store.get(BareMetalHost, name, namespace)
        except NotFound:
            return
        if host.spec.consumer:
            machine = host.metadata.labels.get(MACHINE_LABEL) or host.spec.consumer
            raise ApiError(409, f"BareMetalHost {name!r} is provisioned for Machine {machine}: "
                                "delete the Machine first (its host is then deprovisioned "
                                "and freed)")

    async def _last_manager(self, name: str, namespace: str | None) -> None:
        """The last control-plane Machine of a Cluster that stays: with no manager left the
        cluster is lost, while every other node looks healthy."""
        try:
            machine = await self.store.get(Machine, name, namespace)
            cluster = await self.store.get(Cluster, machine.spec.cluster, namespace)
        except NotFound:
            return  # the store's delete answers for a missing Machine; no Cluster, no quorum
        if machine.spec.role != "control-plane" or machine.deleting or cluster.deleting:
            return
        cluster_name = cluster.metadata.name
        others = await self.store.list_all(
            Machine, namespace, where=lambda m: m.spec.cluster == cluster_name
            and m.spec.role == "control-plane" and not m.deleting and m.metadata.name != name)
        if not others:
            raise ApiError(409, f"Machine {name!r} is the last control-plane node of cluster "
                                f"{cluster_name!r}: add another control-plane Machine first, "
                                "or delete the Cluster")


def _refuse_in_use(cls: type[Resource], name: str, kind: str, users: list[str],
                   consequence: str) -> None:
    if not users:
        return
    shown = ", ".join(sorted(users)[:5]) + (f" and {len(users) - 5} more" if len(users) > 5
                                            else "")
    raise ApiError(409, f"{cls.KIND} {name!r} is in use by {kind} {shown}: {consequence}; "
                        f"delete or change {'them' if len(users) > 1 else 'it'} first")
