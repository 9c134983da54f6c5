"""Cluster controller: a managed Cluster's LCMCluster and LCMMachines, upgrades, status.

Per pass: accept the Cluster's release (initially, or as an upgrade the compatibility
matrix allows), make one LCMMachine per Machine carrying the state items of the accepted
release, drive
the rolling upgrade one step (``services.lcm.rollout`` decides who may
start; each machine goes cordon -> new items -> uncordon), and aggregate machine states
into LCMCluster and Cluster status. Items follow each Machine's current spec (its role),
so a change there reconfigures the node.

The manager is one control-plane node, pinned on the LCMCluster once chosen (until it has
an address, another control-plane node that has one takes over): it installs MKE, every
other node joins through its address. Its LCMMachine is made at once; every
other node's once that address is known, so each joins the right manager the first time
instead of joining nothing and being reconfigured (and the manager's own items never
depend on its address, so it is not re-joined once its address appears). When the manager
changes (its node deleted), nodes that have joined stay joined: managers are peers, and
only nodes joining later name the new one. Machines the
provider has no node for (``ProviderReady`` False, ``NoCapacity``) keep the cluster
Pending with ``Capacity`` False saying how many wait and why; a provider the cluster's
Region does not offer, or whose service is down there, keeps it Pending with
``ProviderAvailable`` False. A failing item,
cordon/drain or uncordon on a machine in flight stops the rollout until it succeeds. A
Cluster delete removes its Machines (each runs its own drain/deprovision flow) and then the
LCM objects, its UpdateGroups, MachineHealthChecks and GracefulRebootRequest.

Maintenance: while the Cluster is in maintenance no upgrade is accepted (a changed
``spec.release`` waits, ``Upgraded`` False ``HeldByMaintenance``) and its ``Maintenance``
condition counts its machines in maintenance. A Machine in maintenance has its LCMMachine
cordoned (the agent drains the node) and gets no new items: it keeps what it had, is no
part of a rollout, never makes the cluster Failed, and shows in ``MachinesReady``; once
out of it the rollout's own flow uncordons it, after applying what was held back.

Graceful reboots (``services.lcm.gracefulreboot``) mark the LCMMachines they cordon: such a
machine is theirs to uncordon, holds the rollout (no upgrade step starts meanwhile) and
shows in ``MachinesReady`` and the phase as ``Rebooting``.

Everything is level-triggered: every pass recomputes from the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from services.lcm.config import LCMSettings
from services.lcm.disruption import Disruptions
from services.lcm.items import keep_joined, node_labels_item, release_items
from services.lcm.lcmmachine import CORDON, HEARTBEAT, ITEMS_READY, MAINTENANCE, drain_of
from services.lcm.objects import patch
from services.lcm.rollout import Group, MachineView, Plan, plan, state_of
from services.release.compat import UpgradeNotAllowed, check_upgrade, latest_kaas
from shared.models import (
    CLUSTER_LABEL,
    GRACEFUL_REBOOT_ANNOTATION,
    REGION_LABEL,
    Cluster,
    ClusterRelease,
    GracefulRebootRequest,
    KaaSRelease,
    LCMCluster,
    LCMClusterSpec,
    LCMMachine,
    LCMMachineSpec,
    Machine,
    MachineHealthCheck,
    MachinePool,
    ObjectMeta,
    Region,
    Resource,
    StateItem,
    UpdateGroup,
    copy,
)
from shared.models.meta import Severity
from shared.runtime import (
    Request,
    Result,
    TransientError,
    ensure_finalizer,
    remove_finalizer,
    status_writer,
)
from shared.runtime import conditions as cond
from shared.store import AlreadyExists, NotFound, Store

log = logging.getLogger(__name__)

FINALIZER = "lcm.kaas.containercloud.dev/cluster"

UPGRADE_ALLOWED = "UpgradeAllowed"
RELEASE_READY = "ReleaseReady"
MACHINES_READY = "MachinesReady"
UPGRADED = "Upgraded"
CAPACITY = "Capacity"
# Only while False: the cluster's Region (when it exists) does not offer its provider, or
# the provider's service there has no live replica, so nothing makes its nodes.
PROVIDER_AVAILABLE = "ProviderAvailable"
PROVIDER_RECHECK = 30.0
PROVIDER_READY = cond.PROVIDER_READY  # on the Machine, written by its provider
NO_CAPACITY = "NoCapacity"
HELD = "HeldByMaintenance"
REBOOTING = "Rebooting"  # machines a GracefulRebootRequest has cordoned


def _failure(lm: LCMMachine) -> str:
    """Why a machine is stuck: a failing item, cordon/drain/uncordon, or a silent agent."""
    c = cond.get(lm.status, ITEMS_READY)
    if c is not None and c.reason == "ItemFailed":
        return c.message
    c = cond.get(lm.status, CORDON)
    if c is not None and c.status == "False":
        return c.message
    hb = cond.get(lm.status, HEARTBEAT)
    if hb is not None and hb.reason == "HeartbeatMissing":
        return hb.message
    return ""


def capacity_shortfall(machines: list[Machine]) -> list[tuple[str, str]]:
    """(name, provider message) of machines the provider has no node for yet."""
    out = []
    for m in machines:
        c = cond.get(m.status, PROVIDER_READY)
        if c is not None and c.status == "False" and c.reason == NO_CAPACITY:
            out.append((m.metadata.name, c.message))
    return sorted(out)


class ClusterReconciler:
    def __init__(self, store: Store, settings: LCMSettings, *,
                 disruptions: Disruptions | None = None) -> None:
        self.store = store
        self.settings = settings
        # Shared with the graceful reboot: which of the two takes a node out next.
        self.disruptions = disruptions or Disruptions()

    async def reconcile(self, req: Request) -> Result | None:
        cluster = await self.store.get(Cluster, req.name, req.namespace)
        if cluster.deleting:
            return await self.reconcile_delete(cluster)
        cluster = await ensure_finalizer(self.store, cluster, FINALIZER)
        if cluster.spec.paused:
            return None
        async with self.disruptions.deciding(req.namespace, req.name), \
                status_writer(self.store, cluster):
            return await self.reconcile_normal(cluster)

    # --- normal path ----------------------------------------------------------------------

    async def reconcile_normal(self, cluster: Cluster) -> Result | None:
        ns = cluster.metadata.namespace
        lcc = await self._lcm_cluster(cluster)
        if lcc is None:
            return None
        target = lcc.spec.release
        # The release the Cluster asks for while maintenance holds its upgrade ("": none).
        held = cluster.spec.release if (
            cluster.spec.maintenance and cluster.spec.release != target
            and cond.is_true(cluster.status, UPGRADE_ALLOWED)) else ""
        try:
            release = await self.store.get(ClusterRelease, target)
        except NotFound:
            cond.mark_false(cluster.status, RELEASE_READY, "ReleaseMissing",
                            f"ClusterRelease {target} not found", "Error")
            raise TransientError(f"ClusterRelease {target} not found", delay=5.0) from None
        cond.mark_true(cluster.status, RELEASE_READY, "Found")

        # Shared, not copied (a reconcile per machine event, each listing every machine):
        # read here, and copied in _step before a change.
        machines = await self.store.list_all(
            Machine, ns, where=lambda m: m.spec.cluster == cluster.metadata.name, shared=True)
        live = {m.metadata.name: m for m in machines if not m.deleting}
        maintenance = sorted(n for n, m in live.items() if m.spec.maintenance)
        lacking = await self._provider_lacking(  # (reason, message, severity)
            cluster, nodes_wanted=any(not cond.is_true(m.status, PROVIDER_READY)
                                      for m in live.values()))
        lms = {lm.metadata.name: lm for lm in await self.store.list_all(
            LCMMachine, ns, label_selector=f"{CLUSTER_LABEL}={cluster.metadata.name}",
            shared=True)}
        groups = {
            g.metadata.name: Group(g.metadata.name, g.spec.index, g.spec.concurrent_updates)
            for g in await self.store.list_all(
                UpdateGroup, ns, where=lambda g: g.spec.cluster == cluster.metadata.name)
        }

        manager = self._manager(lcc, live, lms)
        unjoinable = 0  # machines waiting for the manager's address
        for name, m in sorted(live.items()):
            if name in lms:
                continue
            if name != manager[0] and not manager[1]:
                unjoinable += 1  # created once the manager is known: joined right first time
                continue
            lms[name] = await self._create_lcm_machine(cluster, lcc, m, release,
                                                       _join_through(name, manager))

        active = {n: lm for n, lm in lms.items() if n in live}
        views: list[MachineView] = []
        for name, lm in sorted(active.items()):
            views.append(MachineView(
                name=name,
                role=live[name].spec.role,
                state=state_of(
                    spec_release=lm.spec.release, status_release=lm.status.release,
                    target=target, spec_cordoned=lm.spec.cordoned,
                    status_cordoned=lm.status.cordoned, maintenance=live[name].spec.maintenance,
                    rebooting=GRACEFUL_REBOOT_ANNOTATION in lm.metadata.annotations,
                ),
                group=live[name].spec.update_group,
                failure=_failure(lm),
                behind=(lm.spec.release, lm.status.release) != (target, target),
            ))
        p = plan(views, groups)
        for v in views:
            if v.name != manager[0] and not manager[1]:
                continue  # the manager moved and has no address yet: nothing to join through
            await self._step(active[v.name], live[v.name], v, target, release,
                             _join_through(v.name, manager), start=v.name in p.start)

        self._aggregate(cluster, lcc, list(active.values()), p, target,
                        capacity_shortfall(list(live.values())), total=len(live),
                        unjoinable=unjoinable, lacking=lacking, maintenance=maintenance,
                        held=held)
        await self._write_lcm_status(lcc, cluster, manager)
        # A Region edit wakes no cluster: look again for the provider the region now offers.
        return Result(requeue_after=PROVIDER_RECHECK) if lacking else None

    @staticmethod
    def _manager(
        lcc: LCMCluster, live: dict[str, Machine], lms: dict[str, LCMMachine]
    ) -> tuple[str, str]:
        """(machine, address) of the MKE manager: the node pinned on the LCMCluster while it
        stays a live control-plane node with an address (so adding nodes never re-joins the
        others), else the first such by name; while none has an address, the pinned one or
        the first by name, with address "" (a manager with no node yet yields to one that
        has); ("", "") while the cluster has no control-plane node."""

        def address(name: str) -> str:
            if m := live.get(name):
                if m.status.addresses:
                    return m.status.addresses[0]
            lm = lms.get(name)
            return lm.status.ip if lm is not None else ""

        cps = sorted(n for n, m in live.items() if m.spec.role == "control-plane")
        pinned = lcc.status.manager_machine
        if pinned in cps and (a := address(pinned)):
            return pinned, a
        for name in cps:
            if a := address(name):
                return name, a
        if not cps:
            return "", ""
        return (pinned if pinned in cps else cps[0]), ""

    async def _lcm_cluster(self, cluster: Cluster) -> LCMCluster | None:
        ns, name = cluster.metadata.namespace, cluster.metadata.name
        try:
            lcc = await self.store.get(LCMCluster, name, ns)
        except NotFound:
            lcc = LCMCluster(
                metadata=ObjectMeta(
                    name=name, namespace=ns,
                    labels={CLUSTER_LABEL: name, REGION_LABEL: cluster.spec.region},
                    owner_references=[cluster.owner_ref()],
                ),
                spec=LCMClusterSpec(cluster=name, region=cluster.spec.region,
                                    release=cluster.spec.release),
            )
            try:
                lcc = await self.store.create(lcc)
            except AlreadyExists:
                lcc = await self.store.get(LCMCluster, name, ns)
        if lcc.deleting:
            return None
        current, wanted = lcc.spec.release, cluster.spec.release
        if current == wanted:
            cond.remove(cluster.status, UPGRADE_ALLOWED)
            return lcc
        reason = await self._upgrade_refusal(current, wanted)
        if reason is not None:
            cond.mark_false(cluster.status, UPGRADE_ALLOWED, "UpgradeNotAllowed", reason, "Error")
            return lcc
        if cluster.spec.maintenance:  # held, not refused: it starts once maintenance ends
            cond.mark_true(cluster.status, UPGRADE_ALLOWED, "Allowed",
                           f"{current} -> {wanted}, once the cluster leaves maintenance")
            return lcc
        cond.mark_true(cluster.status, UPGRADE_ALLOWED, "Allowed", f"{current} -> {wanted}")
        log.info("cluster %s/%s: upgrade %s -> %s accepted", ns, name, current, wanted)

        def accept(obj: LCMCluster) -> bool:
            if obj.spec.release == wanted:
                return False
            obj.spec.release = wanted
            return True

        return await patch(self.store, lcc, accept)

    async def _upgrade_refusal(self, current: str, target: str) -> str | None:
        kaas = latest_kaas(await self.store.list_all(KaaSRelease))
        if kaas is None:
            return "no KaaSRelease is installed, so no upgrade path is known"
        releases = await self.store.list_all(ClusterRelease)
        try:
            check_upgrade(kaas, releases, current, target)
        except UpgradeNotAllowed as e:
            return str(e)
        return None

    async def _create_lcm_machine(
        self, cluster: Cluster, lcc: LCMCluster, m: Machine, release: ClusterRelease,
        manager: str,
    ) -> LCMMachine:
        """A Machine in maintenance gets a cordoned node and nothing to apply yet: it deploys
        once out of maintenance."""
        ns = cluster.metadata.namespace
        held = m.spec.maintenance
        lm = LCMMachine(
            metadata=ObjectMeta(
                name=m.metadata.name, namespace=ns,
                labels={CLUSTER_LABEL: cluster.metadata.name, REGION_LABEL: m.spec.region},
                owner_references=[lcc.owner_ref()],
            ),
            spec=LCMMachineSpec(
                cluster=cluster.metadata.name, machine=m.metadata.name, region=m.spec.region,
                role=m.spec.role, release="" if held else release.metadata.name,
                state_items=[] if held else self._items(release, m, manager),
                cordoned=held, machine_uid=m.metadata.uid or "",
            ),
        )
        try:
            return await self.store.create(lm)
        except AlreadyExists:
            return await self.store.get(LCMMachine, m.metadata.name, ns)

    def _items(
        self, release: ClusterRelease, m: Machine, manager: str, lm: LCMMachine | None = None,
    ) -> list[StateItem]:
        """The release's items for the Machine's role, with its node labels (``lm``: the
        items the node has now, whose labels a change must remove)."""
        items = release_items(release, m.spec.role, mirror_url=self.settings.mirror_url,
                              manager=manager)
        labels = node_labels_item(m.spec.node_labels, lm.spec.state_items if lm else [],
                                  lm.status.state_items if lm else {})
        return items if labels is None else [*items, labels]

    async def _step(
        self, lm: LCMMachine, m: Machine, v: MachineView, target: str, release: ClusterRelease,
        manager: str, *, start: bool,
    ) -> None:
        """Move one machine one step along deploy/upgrade; each write is idempotent.

        The items always follow the Machine's current spec (its role) and the release, so a
        change reaches the node as changed items: the agent re-applies exactly those
        (Reconfigure). A node that has joined MKE keeps its join when only the cluster's
        manager changed (``keep_joined``). A machine waiting for its upgrade keeps its old
        items until drained. A machine in maintenance is only kept cordoned: no new items,
        and never uncordoned here while it stays in maintenance.
        """
        role = m.spec.role
        items = keep_joined(lm.spec.state_items, lm.status.state_items,
                            self._items(release, m, manager, lm))

        def release_due(obj: LCMMachine) -> bool:
            return (obj.spec.release, obj.spec.role, obj.spec.state_items) != (target, role, items)

        def set_release(obj: LCMMachine) -> bool:
            if not release_due(obj):
                return False
            if obj.spec.role != role:
                log.info("reconfigure %s: role %s -> %s", obj.metadata.name, obj.spec.role, role)
            obj.spec.release, obj.spec.role, obj.spec.state_items = target, role, items
            return True

        def cordon(on: bool) -> Callable[[LCMMachine], bool]:
            def mutate(obj: LCMMachine) -> bool:
                if obj.spec.cordoned == on:
                    return False
                obj.spec.cordoned = on
                return True
            return mutate

        # ``lm`` is the store cache's shared object: changes are made to a copy.
        match v.state:
            case "maintenance":
                if not lm.spec.cordoned:
                    log.info("maintenance: cordon and drain %s", lm.metadata.name)
                    await patch(self.store, copy(lm), cordon(True))
            case "deploying" | "current" | "upgrading":
                if release_due(lm):  # also picks up reconfiguration
                    await patch(self.store, copy(lm), set_release)
            case "waiting" if start:
                log.info("upgrade: cordon and drain %s", lm.metadata.name)
                await patch(self.store, copy(lm), cordon(True))
            case "draining" if lm.status.cordoned:
                log.info("upgrade: %s drained, applying %s", lm.metadata.name, target)
                await patch(self.store, copy(lm), set_release)
            case "uncordoning":
                await patch(self.store, copy(lm), cordon(False))
            case _:  # "rebooting" among them: the graceful reboot cordons and uncordons
                pass

    # --- status ---------------------------------------------------------------------------

    async def _provider_lacking(
        self, cluster: Cluster, *, nodes_wanted: bool
    ) -> tuple[str, str, Severity] | None:
        """Why the cluster's Region cannot serve its provider: it does not offer it, or -
        while some machine still waits for its node (``nodes_wanted``) - the provider's
        service is down there (a running cluster does not need it up). None when it can,
        or when the Region is not written (yet). From the store's cache where it has one."""
        spec = cluster.spec
        region = await self.store.peek(Region, spec.region)
        if region is None:
            return None
        if not region.offers(spec.provider):
            return ("ProviderNotInRegion", f"region {spec.region} offers "
                    f"{', '.join(region.spec.providers)}, not {spec.provider}: no provider "
                    "service will make this cluster's nodes", "Error")
        if nodes_wanted and f"provider-{spec.provider}" in region.status.services_down:
            return ("ProviderDown", f"no running provider-{spec.provider} in region "
                    f"{spec.region}: this cluster's nodes wait for it", "Warning")
        return None

    def _aggregate(
        self, cluster: Cluster, lcc: LCMCluster, lms: list[LCMMachine], p: Plan, target: str,
        short: list[tuple[str, str]], *, total: int, unjoinable: int = 0,
        lacking: tuple[str, str, Severity] | None = None, maintenance: list[str] | None = None,
        held: str = "",
    ) -> None:
        """``total``: the cluster's live Machines; ``lms`` may be fewer (a node other than
        the manager gets its LCMMachine once the manager's address is known).
        ``maintenance``: the live Machines in maintenance; ``held``: the release whose
        upgrade the cluster's maintenance holds back."""
        st = cluster.status
        maint = set(maintenance or ())
        rebooting = sorted(lm.metadata.name for lm in lms
                           if GRACEFUL_REBOOT_ANNOTATION in lm.metadata.annotations)
        if lacking:
            cond.mark_false(st, PROVIDER_AVAILABLE, *lacking)
        else:
            cond.remove(st, PROVIDER_AVAILABLE)
        # Machines the provider found no node for: the cluster waits (Pending), saying why.
        if short:
            name, msg = short[0]
            cond.mark_false(st, CAPACITY, NO_CAPACITY,
                            f"{len(short)} of {total} machines "
                            f"{'waits' if len(short) == 1 else 'wait'} for capacity; "
                            f"{name}: {msg}", "Warning")
        else:
            cond.remove(st, CAPACITY)
        self._maintenance(cluster, {lm.metadata.name: lm for lm in lms}, sorted(maint),
                          total=total, held=held)
        ready = sum(1 for lm in lms if cond.is_true(lm.status, cond.READY)
                    and not lm.spec.cordoned and lm.metadata.name not in maint)
        st.total_machines, st.ready_machines = total, ready
        # A machine in maintenance is out of service on purpose: its drain is reported by
        # the Maintenance conditions, never as a failure of the cluster.
        failures = sorted((lm.metadata.name, f) for lm in lms
                          if lm.metadata.name not in maint and (f := _failure(lm)))
        in_maint = f"; {len(maint)} in maintenance" if maint else ""
        if total == 0:
            cond.mark_false(st, MACHINES_READY, "NoMachines", "the cluster has no machines",
                            "Info")
        elif ready == total:
            cond.mark_true(st, MACHINES_READY, "Ready", f"{ready} of {total} machines ready")
        elif failures:
            name, msg = failures[0]
            cond.mark_false(st, MACHINES_READY, "MachineFailed",
                            f"{ready} of {total} machines ready; {name}: {msg}", "Error")
        elif maint and ready + len(maint) >= total:
            cond.mark_false(st, MACHINES_READY, MAINTENANCE,
                            f"{ready} of {total} machines ready{in_maint}", "Info")
        elif rebooting and ready + len(rebooting) >= total:
            cond.mark_false(st, MACHINES_READY, REBOOTING,
                            f"{ready} of {total} machines ready; {', '.join(rebooting)} "
                            "in a graceful reboot", "Info")
        else:
            waiting = (f"; {unjoinable} {'waits' if unjoinable == 1 else 'wait'} for a "
                       "control-plane node's address to join through" if unjoinable else "")
            cond.mark_false(st, MACHINES_READY, "NotReady",
                            f"{ready} of {total} machines ready{waiting}{in_maint}", "Info")
        all_at_target = total > 0 and len(lms) == total and all(
            lm.spec.release == target and lm.status.release == target for lm in lms)
        # Deployed machines a rollout passed by because they are in maintenance.
        behind = sorted(lm.metadata.name for lm in lms if lm.metadata.name in maint
                        and lm.status.release
                        and (lm.spec.release, lm.status.release) != (target, target))
        upgrading = bool(p.in_flight or p.waiting)
        if p.failed:
            name, msg = p.failed[0]
            cond.mark_false(st, UPGRADED, "UpgradeFailed",
                            f"upgrade to {target} stopped at {name}: {msg}", "Error")
        elif upgrading:
            done = total - len(p.in_flight) - len(p.waiting) - len(behind)
            cond.mark_false(st, UPGRADED, "Upgrading",
                            f"upgrading to {target}: {done} of {total} machines done", "Info")
        elif held:
            cond.mark_false(st, UPGRADED, HELD, f"the upgrade to {held} waits for the "
                            "cluster to leave maintenance", "Info")
        elif behind:
            cond.mark_false(st, UPGRADED, HELD,
                            f"{total - len(behind)} of {total} machines run {target}; "
                            f"{', '.join(behind)} in maintenance, upgraded once out of it",
                            "Info")
        elif all_at_target:
            cond.mark_true(st, UPGRADED, "Current", f"all machines run {target}")
        else:
            cond.mark_false(st, UPGRADED, "Deploying", f"deploying {target}", "Info")
        if all_at_target and not upgrading:
            st.release = target
        cond.summarize(st, [RELEASE_READY, MACHINES_READY, UPGRADED]
                       + ([CAPACITY] if short else []) + ([PROVIDER_AVAILABLE] if lacking else []))
        if p.failed:
            st.phase = "Failed"
        elif upgrading:
            st.phase = "Upgrading"
        elif short or (lacking and lacking[0] == "ProviderNotInRegion"):
            st.phase = "Pending"
        elif cluster.spec.maintenance or maint:
            st.phase = MAINTENANCE
        elif rebooting:
            st.phase = REBOOTING
        elif not st.release:
            st.phase = "Provisioning"
        else:
            st.phase = "Ready" if ready == total else "Degraded"
        st.observed_generation = cluster.metadata.generation

    @staticmethod
    def _maintenance(
        cluster: Cluster, lms: dict[str, LCMMachine], machines: list[str], *, total: int,
        held: str,
    ) -> None:
        """The Cluster's ``Maintenance`` condition: True while it is in maintenance, saying
        which of its machines are and how far their drains got; False (Warning) for
        machines in maintenance in a cluster that is not (written past the API's check)."""
        st = cluster.status
        if not cluster.spec.maintenance and not machines:
            cond.remove(st, MAINTENANCE)
            return
        shown = []
        for name in machines:
            drain = drain_of(lms.get(name))
            how = "drained" if drain.done else (
                f"draining: {drain.message}" if drain.severity == "Error" else "draining")
            shown.append(f"{name} ({how})")
        count = f"{len(machines)} of {total} machines in maintenance" + (
            f": {', '.join(shown)}" if shown else "")
        if not cluster.spec.maintenance:
            cond.mark_false(st, MAINTENANCE, "MachinesInMaintenance",
                            f"the cluster is not in maintenance, but {count}", "Warning")
            return
        upgrade = f"; the upgrade to {held} waits for maintenance to end" if held else ""
        cond.mark_true(st, MAINTENANCE, "InMaintenance", count + upgrade)

    async def _write_lcm_status(
        self, lcc: LCMCluster, cluster: Cluster, manager: tuple[str, str]
    ) -> None:
        async with status_writer(self.store, lcc) as obj:
            s, c = obj.status, cluster.status
            s.manager_machine, s.manager_address = manager
            s.ready_nodes, s.total_nodes = c.ready_machines, c.total_machines
            s.release = c.release
            s.upgrade_in_progress = c.phase in ("Upgrading", "Failed") and bool(c.release)
            s.phase = c.phase
            for t in (MACHINES_READY, UPGRADED, CAPACITY, PROVIDER_AVAILABLE, MAINTENANCE,
                      cond.READY):
                src = cond.get(c, t)
                if src is None:
                    cond.remove(s, t)
                    continue
                if src.status == "True":
                    cond.mark_true(s, t, src.reason, src.message)
                else:
                    cond.mark_false(s, t, src.reason, src.message, src.severity)

    # --- delete ---------------------------------------------------------------------------

    async def reconcile_delete(self, cluster: Cluster) -> Result | None:
        ns, name = cluster.metadata.namespace, cluster.metadata.name
        # Pools first, so none makes a Machine again; each deletes its own Machines.
        pools = await self.store.list_all(MachinePool, ns, where=lambda p: p.spec.cluster == name)
        for p in pools:
            if not p.deleting:
                await self._delete(MachinePool, p.metadata.name, ns)
        machines = await self.store.list_all(Machine, ns, where=lambda m: m.spec.cluster == name)
        for m in machines:
            if not m.deleting:
                await self.store.delete(Machine, m.metadata.name, ns)
        if machines or pools:
            what = f"{len(machines)} machines" + (f" and {len(pools)} machine pools"
                                                   if pools else "")
            async with status_writer(self.store, cluster) as c:
                c.status.phase = "Deleting"
                cond.mark_false(c.status, cond.READY, "Deleting",
                                f"waiting for {what} to be removed", "Info")
            raise TransientError(f"{what} still being removed", delay=1.0)
        for g in await self.store.list_all(UpdateGroup, ns):
            if g.spec.cluster == name:
                await self._delete(UpdateGroup, g.metadata.name, ns)
        for hc in await self.store.list_all(MachineHealthCheck, ns):
            if hc.spec.cluster == name:
                await self._delete(MachineHealthCheck, hc.metadata.name, ns)
        await self._delete(GracefulRebootRequest, name, ns)
        for lm in await self.store.list_all(
                LCMMachine, ns, label_selector=f"{CLUSTER_LABEL}={name}"):
            await self._delete(LCMMachine, lm.metadata.name, ns)
        await self._delete(LCMCluster, name, ns)
        await remove_finalizer(self.store, cluster, FINALIZER)
        log.info("cluster %s/%s: LCM objects removed", ns, name)
        return None

    async def _delete(self, cls: type[Resource], name: str, ns: str | None) -> None:
        try:
            await self.store.delete(cls, name, ns)
        except NotFound:
            pass


def _join_through(name: str, manager: tuple[str, str]) -> str:
    """The manager address in ``name``'s items: none for the manager itself (it installs
    MKE, whatever its address)."""
    return "" if name == manager[0] else manager[1]
