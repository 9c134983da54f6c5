"""MachinePool controller: keep ``spec.replicas`` worker Machines of a cluster.

Cluster API's MachineSet, for workers (a cluster's control plane is not a number to scale).
The pool's Machines are those with its label (``POOL_LABEL``) in its cluster; it makes the
missing ones from its template, named ``<pool>-<n>`` with the lowest free ``n``, owned by
the pool, and deletes the surplus, whose own finalizers drain and free their nodes. Names
are the idempotence: a reconcile lists the Machines (a list includes every write that
finished before it), so one repeated after a crash, or an event delivered twice, finds
what the previous pass made and makes nothing twice; a name taken meanwhile is skipped.

Shrinking picks, in order: Machines marked with ``DELETE_MACHINE_ANNOTATION``, those made
from an older template, those not Ready, then by ``deletePolicy`` (Newest: the most
recently made first). With the default ``OnDelete`` strategy a template change applies to
Machines made after it (``status.updatedReplicas`` counts those made from the current one)
and replacing the others is the operator's choice (delete them, the pool makes new ones):
a rolling replacement of bare-metal nodes is not something to start on an edit unasked.
``RollingUpdate`` replaces them within ``maxSurge`` / ``maxUnavailable`` (``moves``), as
Cluster API's MachineDeployment.

A pool being deleted deletes its Machines and goes once they are gone, so a cluster's
deletion waits for its pools too (``services.lcm.cluster``). A pool of a Cluster that does
not exist yet, or is being deleted, makes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import msgspec

from services.lcm.index import ClusterIndex
from shared.bus import ChangeEvent
from shared.models import (
    CLUSTER_LABEL,
    DELETE_MACHINE_ANNOTATION,
    POOL_LABEL,
    POOL_TEMPLATE_ANNOTATION,
    Cluster,
    Machine,
    MachinePool,
    MachineSpec,
    ObjectMeta,
)
from shared.models.fit import misfit
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

FINALIZER = "lcm.kaas.containercloud.dev/machinepool"


def template_hash(pool: MachinePool) -> str:
    """Names the template a Machine was made from (on the Machine, in an annotation)."""
    return hashlib.sha256(msgspec.json.encode(pool.spec.template)).hexdigest()[:12]


def selector(pool: MachinePool) -> str:
    return f"{POOL_LABEL}={pool.metadata.name}"


def machine_for(pool: MachinePool, name: str, template: str) -> Machine:
    t = pool.spec.template
    return Machine(
        metadata=ObjectMeta(
            name=name,
            namespace=pool.metadata.namespace,
            labels={**t.metadata.labels, POOL_LABEL: pool.metadata.name,
                    CLUSTER_LABEL: pool.spec.cluster},
            annotations={**t.metadata.annotations, POOL_TEMPLATE_ANNOTATION: template},
            owner_references=[pool.owner_ref()],
        ),
        spec=MachineSpec(
            cluster=pool.spec.cluster, role="worker", region=pool.spec.region,
            update_group=t.spec.update_group, node_labels=dict(t.spec.node_labels),
            openstack=t.spec.openstack,
            vsphere=t.spec.vsphere, baremetal=t.spec.baremetal, simulated=t.spec.simulated,
        ),
    )


def _index(pool: str, machine: str) -> int:
    """``n`` of a Machine named ``<pool>-<n>`` (-1 for one adopted under another name)."""
    tail = machine[len(pool) + 1:]
    return int(tail) if machine.startswith(f"{pool}-") and tail.isdigit() else -1


def surplus(pool: MachinePool, live: list[Machine], count: int, template: str) -> list[Machine]:
    """The ``count`` Machines a shrinking pool deletes, first to go first."""
    name = pool.metadata.name
    by_age = sorted(live, key=lambda m: (m.metadata.creation_timestamp or "",
                                         _index(name, m.metadata.name)),
                    reverse=pool.spec.delete_policy == "Newest")
    ranked = sorted(by_age, key=lambda m: (
        DELETE_MACHINE_ANNOTATION not in m.metadata.annotations,
        m.metadata.annotations.get(POOL_TEMPLATE_ANNOTATION) == template,
        cond.is_true(m.status, cond.READY),
    ))  # stable: within a rank, the policy's order
    return ranked[:count]


def _waiting(m: Machine) -> str:
    """A machine not Ready yet, with what its Ready condition says it waits for."""
    ready = cond.get(m.status, cond.READY)
    return f"{m.metadata.name} ({ready.reason})" if ready and ready.reason else m.metadata.name


@dataclass
class Moves:
    """What one pass does: how many Machines to make, which to delete."""

    make: int = 0
    delete: list[Machine] = field(default_factory=list)


def rolling(pool: MachinePool) -> bool:
    return pool.spec.strategy.type == "RollingUpdate"


def moves(pool: MachinePool, live: list[Machine], template: str) -> Moves:
    """Toward ``spec.replicas`` Machines - and, rolling, all of the current template: new
    ones are made up to ``maxSurge`` beyond the count, and old ones deleted while the Ready
    machines stay at least ``maxUnavailable`` below it (old ones not Ready go first, and at
    no cost to that bound). Each pass takes the step the machines' state allows; their
    events bring the next one."""
    want = pool.spec.replicas
    outdated = [m for m in live if m.metadata.annotations.get(POOL_TEMPLATE_ANNOTATION)
                != template]
    if rolling(pool) and outdated:
        ru = pool.spec.strategy.rolling_update
        ceiling = want + ru.max_surge
        if len(live) > ceiling:  # shrunk during the rollout: as any shrink, old ones first
            return Moves(delete=surplus(pool, live, len(live) - ceiling, template))
        current = len(live) - len(outdated)
        step = Moves(make=max(0, min(ceiling - len(live), want - current)))
        spare = sum(cond.is_true(m.status, cond.READY) for m in live) - (want - ru.max_unavailable)
        for m in surplus(pool, outdated, len(outdated), template):
            if not cond.is_true(m.status, cond.READY):
                step.delete.append(m)
            elif spare > 0:
                step.delete.append(m)
                spare -= 1
        return step
    if len(live) < want:
        return Moves(make=want - len(live))
    if len(live) > want:
        return Moves(delete=surplus(pool, live, len(live) - want, template))
    return Moves()


class MachinePoolReconciler:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.index = ClusterIndex()  # the pools of each cluster

    def pools_of_cluster(self, ev: ChangeEvent) -> list[Request]:
        return self.index.requests(ev.namespace, ev.name)

    async def reconcile(self, req: Request) -> Result | None:
        try:
            pool = await self.store.get(MachinePool, req.name, req.namespace)
        except NotFound:
            self.index.forget(req.namespace, req.name)
            raise
        if pool.deleting:
            self.index.forget(req.namespace, req.name)
            return await self._delete(pool)
        self.index.follow(req.namespace, req.name, pool.spec.cluster)
        pool = await ensure_finalizer(self.store, pool, FINALIZER)
        async with status_writer(self.store, pool) as obj:
            await self._scale(obj)
        return None

    async def _machines(self, pool: MachinePool) -> list[Machine]:
        return await self.store.list_all(
            Machine, pool.metadata.namespace, label_selector=selector(pool),
            where=lambda m: m.spec.cluster == pool.spec.cluster)

    async def _scale(self, pool: MachinePool) -> None:
        st = pool.status
        st.observed_generation = pool.metadata.generation
        st.selector = selector(pool)
        template = template_hash(pool)
        live = [m for m in await self._machines(pool) if not m.deleting]
        want = pool.spec.replicas
        blocked = await self._blocked(pool)
        if blocked is None:
            step = moves(pool, live, template)
            if step.make:
                live += await self._make(pool, step.make, template)
            for m in step.delete:
                await self._delete_machine(m)
            gone = {m.metadata.name for m in step.delete}
            live = [m for m in live if m.metadata.name not in gone]
        ready = [m for m in live if cond.is_true(m.status, cond.READY)]
        updated = [m for m in live
                   if m.metadata.annotations.get(POOL_TEMPLATE_ANNOTATION) == template]
        st.replicas, st.ready_replicas, st.updated_replicas = len(live), len(ready), len(updated)
        if blocked is not None:
            st.phase = "Pending"
            cond.mark_false(st, cond.READY, *blocked)
        elif rolling(pool) and len(updated) < len(live):
            st.phase = "Updating"
            cond.mark_false(st, cond.READY, "RollingUpdate",
                            f"{len(updated)} of {len(live)} machines made from the current "
                            f"template, {len(ready)} Ready", "Info")
        elif len(live) != want:
            verb = "ScalingDown" if len(live) > want else "ScalingUp"
            st.phase = verb
            cond.mark_false(st, cond.READY, verb, f"{len(live)} machines, {want} wanted",
                            "Info")
        elif len(ready) < want:
            st.phase = "ScalingUp"
            waiting = sorted(_waiting(m) for m in live if not cond.is_true(m.status, cond.READY))
            cond.mark_false(st, cond.READY, "WaitingForMachines",
                            f"{len(ready)} of {want} machines Ready; waiting for "
                            f"{', '.join(waiting)}", "Info")
        else:
            st.phase = "Running"
            cond.mark_true(st, cond.READY, "Ready", f"{want} of {want} machines Ready")

    async def _blocked(self, pool: MachinePool) -> tuple[str, str, str] | None:
        """Why the pool may not make or delete Machines now (reason, message, severity)."""
        name = pool.spec.cluster
        try:
            cluster = await self.store.get(Cluster, name, pool.metadata.namespace)
        except NotFound:
            return "ClusterNotFound", f"cluster {name!r} does not exist", "Warning"
        if cluster.deleting:
            return "ClusterDeleting", f"cluster {name!r} is being deleted", "Info"
        if cluster.spec.region != pool.spec.region:
            return ("RegionMismatch", f"cluster {name!r} is in region {cluster.spec.region}, "
                    f"not {pool.spec.region}", "Error")
        if (wrong := misfit(pool.spec.template.spec, cluster.spec.provider,
                            "spec.template.spec.")) is not None:
            return "TemplateInvalid", f"cluster {name!r} {wrong[1]}", "Error"
        return None

    async def _make(self, pool: MachinePool, count: int, template: str) -> list[Machine]:
        ns = pool.metadata.namespace
        taken = {m.metadata.name for m in await self.store.list_all(Machine, ns, shared=True)}
        made: list[Machine] = []
        n = 0
        while len(made) < count:
            name = f"{pool.metadata.name}-{n}"
            n += 1
            if name in taken:
                continue
            try:
                made.append(await self.store.create(machine_for(pool, name, template)))
            except AlreadyExists:  # made meanwhile by someone else: not ours to count
                continue
            log.info("machine pool %s/%s: made Machine %s", ns, pool.metadata.name, name)
        return made

    async def _delete_machine(self, m: Machine) -> None:
        try:
            await self.store.delete(Machine, m.metadata.name, m.metadata.namespace)
        except NotFound:
            return
        log.info("machine pool: deleting Machine %s/%s", m.metadata.namespace, m.metadata.name)

    async def _delete(self, pool: MachinePool) -> Result | None:
        machines = await self._machines(pool)
        for m in machines:
            if not m.deleting:
                await self._delete_machine(m)
        if machines:
            async with status_writer(self.store, pool) as obj:
                obj.status.phase = "Deleting"
                obj.status.replicas = obj.status.ready_replicas = 0
                cond.mark_false(obj.status, cond.READY, "Deleting",
                                f"waiting for {len(machines)} machines to be removed", "Info")
            raise TransientError(f"{len(machines)} machines still being removed", delay=2.0)
        await remove_finalizer(self.store, pool, FINALIZER)
        return None
