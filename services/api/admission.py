"""Admission checks that need other objects: refused writes never reach the store.

A Cluster may only name a ClusterRelease the management's KaaSRelease supports, and a
release change must be an upgrade path the compatibility matrix allows. The LCM
controller checks again (it also sees writes that bypass the API); this check gives the
user a 422 naming the field instead of a condition to discover later. Likewise a Cluster's
provider must be one its Region offers, when that Region exists (a Region may be written
after its clusters: its LCM reports a provider it lacks as ``ProviderAvailable=False``).
The Region is read from the store's cache where it has one (no round trip per write), and
read afresh before a refusal, so a provider added a moment ago is never refused. A Machine
of an existing Cluster must be in its region with only its provider's section, and a
Cluster being deleted takes no new Machine. A MachineHealthCheck of an existing Cluster must
be in its region too (that region's LCM runs it; its own fields - maxUnhealthy, the
strategy, timeouts - are the model's to judge), and no two checks cover one machine (409).
A MachinePool of an existing Cluster is in its region with a template that fits its provider
(the Machine check, on ``spec.template.spec``). A GracefulRebootRequest of an existing Cluster
(named after it) is in its region and lists only Machines of that Cluster, each once.
A Cluster's region and provider, a Machine's cluster and region, and a Machine's provider
section once its node is made cannot change: nothing would move the cluster or remake the
node, the write would only make the objects lie. (Deletes are judged in ``deletion.py``.)

Maintenance mode (409s: the write conflicts with the current state, not with itself): a
Cluster enters maintenance only while no upgrade is under way (LCM would hold the rest of
it with nodes half-upgraded), and leaves it only once none of its Machines is in
maintenance (an upgrade could start with their nodes out of service); a Machine enters
maintenance only while its Cluster is in it, so a node goes out of service only once the
cluster as a whole is held still. LCM copes with writes that bypass these checks.

Release data is read from the store on every check (never cached, so a release written a
moment ago counts), but cheaply: concurrent checks share one list of the KaaSReleases
(``FreshRead``: a shared list always starts after its callers arrived), and an accepted
create reads only the ClusterRelease it names; the full list is read only to explain a
refusal or to judge an upgrade path.
"""

from __future__ import annotations

import msgspec

from services.api.coalesce import FreshRead
from services.api.errors import ApiError
from services.release.compat import Matrix, UpgradeNotAllowed, latest_kaas
from shared.models import (
    Cluster,
    ClusterRelease,
    GracefulRebootRequest,
    KaaSRelease,
    Machine,
    MachineHealthCheck,
    MachinePool,
    Region,
    Resource,
)
from shared.models.fit import PROVIDERS, misfit
from shared.runtime import conditions as cond
from shared.store import Invalid, NotFound, Store

RELEASE_FIELD = "spec.release"
PROVIDER_FIELD = "spec.provider"
MAINTENANCE_FIELD = "spec.maintenance"


class Admission:
    """Admission for one store: ``await admission(obj, stored)`` raises a 422 ``ApiError``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._kaas = FreshRead(lambda: store.list_all(KaaSRelease))
        self._releases = FreshRead(lambda: store.list_all(ClusterRelease))
        self._regions_followed = False

    async def __call__(self, obj: Resource, stored: Resource | None = None) -> None:
        if isinstance(obj, Cluster):
            old = stored if isinstance(stored, Cluster) else None
            if old is not None:
                _unchanged(obj, old, CLUSTER_FIXED, "a cluster stays where it was made: "
                                                    "create another")
            await self._provider(obj, old)
            await self._cluster(obj, old)
            await self._cluster_maintenance(obj, old)
        elif isinstance(obj, Machine):
            was = stored if isinstance(stored, Machine) else None
            if was is not None:
                _unchanged(obj, was, MACHINE_FIXED, "a machine stays in its cluster: create "
                                                    "another")
                if was.status.provider_id:
                    _unchanged(obj, was, PROVIDERS, f"its node {was.status.provider_id} is made: "
                                                    "delete the Machine and create another")
            await self._machine(obj, was)
            await self._machine_maintenance(obj, was)
        elif isinstance(obj, MachineHealthCheck):
            await self._health_check(obj, stored)
        elif isinstance(obj, MachinePool):
            await self._pool(obj, stored if isinstance(stored, MachinePool) else None)
        elif isinstance(obj, GracefulRebootRequest):
            await self._graceful_reboot(
                obj, stored if isinstance(stored, GracefulRebootRequest) else None)

    async def _graceful_reboot(self, obj: GracefulRebootRequest,
                               stored: GracefulRebootRequest | None) -> None:
        """Checked against the Cluster it is named after, when that exists (written before
        it, the request waits: ClusterNotFound). A machine listed that is not the cluster's
        would never be rebooted and the request never complete."""
        spec = obj.spec
        if stored is not None and (stored.spec.region, stored.spec.machines) == (
                spec.region, spec.machines):
            return
        seen: set[str] = set()
        for i, name in enumerate(spec.machines):
            if name in seen:
                raise _invalid(obj, f"{name!r} is listed twice", field=f"spec.machines[{i}]")
            seen.add(name)
        try:
            cluster = await self.store.get(Cluster, obj.metadata.name, obj.metadata.namespace)
        except NotFound:
            return
        if stored is None and cluster.deleting:
            raise ApiError(409, f"cluster {cluster.metadata.name!r} is being deleted: "
                                "nothing to reboot")
        if spec.region != cluster.spec.region:
            raise _invalid(obj, f"cluster {cluster.metadata.name!r} is in region "
                                f"{cluster.spec.region}, not {spec.region}", field="spec.region")
        if not spec.machines:
            return
        ours = {m.metadata.name for m in await self.store.list_all(
            Machine, obj.metadata.namespace,
            where=lambda m: m.spec.cluster == cluster.metadata.name)}
        for i, name in enumerate(spec.machines):
            if name not in ours:
                raise _invalid(obj, f"cluster {cluster.metadata.name!r} has no machine {name!r}",
                               field=f"spec.machines[{i}]")

    async def _pool(self, obj: MachinePool, stored: MachinePool | None) -> None:
        """A MachinePool stays with its cluster and region, names its Machines with room
        to spare, leaves the labels the pool itself sets to it, and - its Cluster existing -
        is in that Cluster's region with a template its provider can make nodes from (the
        same check as a Machine's). A template change is allowed: it applies to the
        Machines made after it."""
        spec = obj.spec
        if stored is not None:
            _unchanged(obj, stored, POOL_FIXED, "a pool stays with its cluster: create another")
        if len(obj.metadata.name) > POOL_NAME_MAX:
            raise _invalid(obj, f"at most {POOL_NAME_MAX} characters: its machines are named "
                                "<pool>-<n>", field="metadata.name")
        if taken := sorted(spec.template.metadata.labels.keys() & Machine.CONTROLLER_LABELS):
            raise _invalid(obj, f"{taken[0]} is set by the pool and LCM, not the template",
                           field="spec.template.metadata.labels")
        try:
            cluster = await self.store.get(Cluster, spec.cluster, obj.metadata.namespace)
        except NotFound:
            return  # written before its Cluster: the pool waits (ClusterNotFound)
        name = cluster.metadata.name
        if stored is None and cluster.deleting:
            raise ApiError(409, f"cluster {name!r} is being deleted: no new pools join it")
        if spec.region != cluster.spec.region:
            raise _invalid(obj, f"cluster {name!r} is in region {cluster.spec.region}, not "
                                f"{spec.region}", field="spec.region")
        wrong = misfit(spec.template.spec, cluster.spec.provider, "spec.template.spec.")
        if wrong is not None:
            raise _invalid(obj, f"cluster {name!r} {wrong[1]}", field=wrong[0])

    async def _health_check(self, obj: MachineHealthCheck, stored: Resource | None) -> None:
        """A MachineHealthCheck of an existing Cluster is in the Cluster's region (its LCM
        runs the check); one written before its Cluster is allowed, as a Machine is. No two
        checks cover one machine: each would count and reboot it on its own, and their
        requests would overwrite each other's on the Machine."""
        spec = obj.spec
        was = stored if isinstance(stored, MachineHealthCheck) else None
        if was is None or (was.spec.cluster, was.spec.selector) != (spec.cluster,
                                                                   spec.selector):
            for other in await self.store.list_all(MachineHealthCheck, obj.metadata.namespace):
                if (other.metadata.name != obj.metadata.name and not other.deleting
                        and other.spec.cluster == spec.cluster
                        and _overlap(other.spec.selector.match_labels,
                                     spec.selector.match_labels)):
                    raise _conflict(obj, f"MachineHealthCheck {other.metadata.name!r} already "
                                         f"covers machines of cluster {spec.cluster!r} this one "
                                         "would: narrow either's selector so that no machine "
                                         "has two checks", field="spec.selector")
        if was is not None and (was.spec.cluster, was.spec.region) == (spec.cluster,
                                                                       spec.region):
            return
        try:
            cluster = await self.store.get(Cluster, spec.cluster, obj.metadata.namespace)
        except NotFound:
            return
        if spec.region != cluster.spec.region:
            raise _invalid(obj, f"cluster {spec.cluster!r} is in region "
                                f"{cluster.spec.region}, not {spec.region}", field="spec.region")

    async def _machine(self, obj: Machine, stored: Machine | None) -> None:
        """A Machine of an existing Cluster is in the Cluster's region and carries only the
        provider section of the Cluster's provider (required where it has required fields):
        a copied ``simulated:`` under a bare metal cluster would be ignored, not refused."""
        spec = obj.spec
        if stored is not None and _placement(stored) == _placement(obj):
            return
        try:
            cluster = await self.store.get(Cluster, spec.cluster, obj.metadata.namespace)
        except NotFound:
            return  # written before its Cluster: the provider reports ClusterNotFound
        name, provider = cluster.metadata.name, cluster.spec.provider
        if stored is None and cluster.deleting:
            raise ApiError(409, f"cluster {name!r} is being deleted: no new machines join it")
        if spec.region != cluster.spec.region:
            raise _invalid(obj, f"cluster {name!r} is in region {cluster.spec.region}, not "
                                f"{spec.region}", field="spec.region")
        if (wrong := misfit(spec, provider)) is not None:
            raise _invalid(obj, f"cluster {name!r} {wrong[1]}", field=wrong[0])

    async def _machine_maintenance(self, obj: Machine, stored: Machine | None) -> None:
        """A Machine enters maintenance only while its Cluster is in maintenance."""
        if not obj.spec.maintenance or (stored is not None and stored.spec.maintenance):
            return
        name = obj.spec.cluster
        try:
            cluster = await self.store.get(Cluster, name, obj.metadata.namespace)
        except NotFound:
            raise _conflict(obj, "cannot enter maintenance: its cluster "
                                 f"{name!r} does not exist") from None
        if not cluster.spec.maintenance:
            raise _conflict(obj, f"cannot enter maintenance: cluster {name!r} is not in "
                                 "maintenance; set the Cluster's spec.maintenance first")

    async def _cluster_maintenance(self, obj: Cluster, stored: Cluster | None) -> None:
        """A Cluster enters maintenance only while no upgrade is under way, and leaves it
        only once none of its Machines (deleting ones aside) is in maintenance."""
        if stored is None or obj.spec.maintenance == stored.spec.maintenance:
            return
        if obj.spec.maintenance:
            if upgrade := _upgrade_under_way(stored):
                raise _conflict(obj, f"cannot enter maintenance while {upgrade}: wait for "
                                     "it to finish")
            return
        name = obj.metadata.name
        held = await self.store.list_all(
            Machine, obj.metadata.namespace,
            where=lambda m: m.spec.cluster == name and m.spec.maintenance and not m.deleting)
        if held:
            names = ", ".join(sorted(m.metadata.name for m in held))
            raise _conflict(obj, f"cannot leave maintenance while its machines are in "
                                 f"maintenance ({names}): clear their spec.maintenance first")

    async def _provider(self, obj: Cluster, stored: Cluster | None) -> None:
        spec = obj.spec
        if stored is not None and (stored.spec.provider, stored.spec.region) == (
                spec.provider, spec.region):
            return
        if not self._regions_followed:  # the first check starts the store's Region cache
            await self.store.list_all(Region)
            self._regions_followed = True
        region = await self.store.peek(Region, spec.region)
        if region is None or region.offers(spec.provider):
            return  # a Region not written (yet) leaves nothing to judge against
        try:
            region = await self.store.get(Region, spec.region)  # afresh, before refusing
        except NotFound:
            return
        if not region.offers(spec.provider):
            message = (f"region {spec.region!r} offers {', '.join(region.spec.providers)}, "
                       f"not {spec.provider}")
            raise _invalid(obj, message, field=PROVIDER_FIELD)

    async def _cluster(self, obj: Cluster, stored: Cluster | None) -> None:
        target = obj.spec.release
        if stored is not None and stored.spec.release == target:
            return
        kaas = latest_kaas(await self._kaas())
        if kaas is None:
            return  # no release data loaded yet: nothing to judge against
        if stored is None and await self._supported_release_exists(kaas, target):
            return
        matrix = Matrix(kaas, await self._releases())
        if stored is None:
            if not matrix.is_supported(target):
                options = ", ".join(r.metadata.name for r in matrix.supported()) or "none"
                raise _invalid(obj, f"ClusterRelease {target!r} is not supported by "
                                    f"KaaSRelease {kaas.metadata.name} (supported: {options})")
            return
        current = stored.status.release or stored.spec.release
        if target == current:
            return  # taking back an upgrade that has not started
        try:
            matrix.check_upgrade(current, target)
        except UpgradeNotAllowed as e:
            raise _invalid(obj, str(e)) from None

    async def _supported_release_exists(self, kaas: KaaSRelease, target: str) -> bool:
        """``Matrix.is_supported(target)`` at the cost of one get instead of a full list."""
        if not any(e.name == target for e in kaas.spec.supported_cluster_releases):
            return False
        try:
            await self.store.get(ClusterRelease, target)
        except (NotFound, Invalid):
            return False  # the full check answers with the reason
        return True


# Spec fields a write may not change (a provider's section: once the node is made).
CLUSTER_FIXED = ("region", "provider")
MACHINE_FIXED = ("cluster", "region")
POOL_FIXED = ("cluster", "region")
POOL_NAME_MAX = 240


def _unchanged(obj: Cluster | Machine | MachinePool, stored: Cluster | Machine | MachinePool,
               fields: tuple[str, ...],
               why: str) -> None:
    for f in fields:
        was, now = getattr(stored.spec, f), getattr(obj.spec, f)
        if was != now:
            shown = was if isinstance(was, str) else msgspec.json.encode(was).decode()
            raise _invalid(obj, f"field is immutable (was {shown}): {why}",
                           field=f"spec.{f}")


def _placement(m: Machine) -> tuple[object, ...]:
    """What the Machine check judges: its cluster, region and which provider sections."""
    return (m.spec.cluster, m.spec.region,
            tuple(getattr(m.spec, p) is not None for p in PROVIDERS))


def _upgrade_under_way(c: Cluster) -> str:
    """What upgrade ``c`` is in ("" for none): one its LCM runs, or a release change it has
    not finished (or, just written, not yet started); a change LCM refused is none."""
    st = c.status
    if st.phase == "Upgrading":
        return f"the upgrade to {c.spec.release} is in progress"
    if not st.release or c.spec.release == st.release:
        return ""
    allowed = cond.get(st, "UpgradeAllowed")
    if allowed is not None and allowed.reason == "UpgradeNotAllowed":
        return ""
    return f"the upgrade {st.release} -> {c.spec.release} is in progress"


def _overlap(a: dict[str, str], b: dict[str, str]) -> bool:
    """Whether some labels match both selectors: unless a key both name wants two values."""
    return all(a[k] == b[k] for k in a.keys() & b.keys())


def _conflict(obj: Resource, message: str, *, field: str = MAINTENANCE_FIELD) -> ApiError:
    """A 409: the write is well-formed but the objects' current state refuses it."""
    return ApiError(
        409,
        f"{obj.kind} {obj.metadata.name!r} {message}",
        causes=[{"field": field, "message": message}],
    )


def _invalid(obj: Resource, message: str, *, field: str = RELEASE_FIELD) -> ApiError:
    return ApiError(
        422,
        f"{obj.kind} {obj.metadata.name!r} is invalid: {field}: {message}",
        causes=[{"field": field, "message": message}],
    )
