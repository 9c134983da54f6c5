"""Machine controller (LCM's part): cluster label, finalizer, maintenance, and the deletion
flow.

A Machine in maintenance (``spec.maintenance``) is cordoned and drained by the Cluster
controller (which owns its LCMMachine's spec); this one writes the Machine's
``Maintenance`` condition when the Machine's spec moves, as the LCMMachine controller does
when the node's agent reports (``mark_maintenance``: the same answer from either side).

Deleting a Machine: cordon and drain the node (``spec.cordoned`` on its LCMMachine, acked
by the agent; skipped when the agent is gone or never came), then report ``Drained`` on
the Machine - the signal for the provider to deprovision - and wait until every other
finalizer (the provider's) is gone. Only then is the LCMMachine deleted and LCM's finalizer
removed, which lets the Machine go.
"""

from __future__ import annotations

import logging

from services.lcm.clock import age
from services.lcm.lcmmachine import HEARTBEAT, MAINTENANCE, mark_maintenance
from services.lcm.objects import patch
from shared.models import CLUSTER_LABEL, LCMMachine, Machine
from shared.runtime import (
    Request,
    Result,
    TransientError,
    ensure_finalizer,
    remove_finalizer,
    status_writer,
)
from shared.runtime import conditions as cond
from shared.store import NotFound, Store

log = logging.getLogger(__name__)

FINALIZER = "lcm.kaas.containercloud.dev/machine"
DRAINED = "Drained"
WAIT = 0.5
READY_GRACE = 3.0  # seconds a new Machine's halves have to set its Ready themselves


class MachineReconciler:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def reconcile(self, req: Request) -> Result | None:
        machine = await self.store.get(Machine, req.name, req.namespace)
        if machine.deleting:
            return await self.reconcile_delete(machine)

        def label(m: Machine) -> bool:
            if m.metadata.labels.get(CLUSTER_LABEL) == m.spec.cluster:
                return False
            m.metadata.labels[CLUSTER_LABEL] = m.spec.cluster
            return True

        machine = await patch(self.store, machine, label)
        machine = await ensure_finalizer(self.store, machine, FINALIZER)
        # Ready sums up the two halves of a machine. Their writers set it as they write
        # (``derive``); this pass covers a Machine neither half has written in its first
        # READY_GRACE seconds (no provider serves its region, say). Written at once it was
        # one more write per Machine, replaced a moment later by the provider's first.
        if cond.get(machine.status, cond.READY) is None:
            young = age(machine.metadata.creation_timestamp or "")
            if young is not None and young < READY_GRACE:
                return Result(requeue_after=min(READY_GRACE - young, READY_GRACE))
        async with status_writer(self.store, machine, derive=cond.summarize_machine) as m:
            if m.spec.maintenance or cond.get(m.status, MAINTENANCE) is not None:
                mark_maintenance(m, await self._lcm_machine(m))
        return None

    async def _lcm_machine(self, machine: Machine) -> LCMMachine | None:
        try:
            lm = await self.store.get(LCMMachine, machine.metadata.name, machine.metadata.namespace)
        except NotFound:
            return None
        return lm if lm.spec.machine_uid == machine.metadata.uid else None

    async def reconcile_delete(self, machine: Machine) -> Result | None:
        if FINALIZER not in machine.metadata.finalizers:
            return None
        name = f"{machine.metadata.namespace}/{machine.metadata.name}"
        lm = await self._lcm_machine(machine)
        if not cond.is_true(machine.status, DRAINED):
            drained, how = await self._drain(lm)
            async with status_writer(self.store, machine) as m:
                m.status.lcm_phase = "Draining" if not drained else "Drained"
                if drained:
                    cond.mark_true(m.status, DRAINED, how)
                elif lm is not None and lm.status.cordon_error:
                    cond.mark_false(m.status, DRAINED, "DrainFailed", how, "Error")
                else:
                    cond.mark_false(m.status, DRAINED, "Draining", how, "Info")
            if not drained:
                raise TransientError(f"{name}: {how}", delay=WAIT)
            log.info("machine %s drained (%s); provider may deprovision", name, how)
        others = [f for f in machine.metadata.finalizers if f != FINALIZER]
        if others:
            raise TransientError(f"{name}: waiting for {', '.join(others)}", delay=WAIT)
        if lm is not None:
            try:
                await self.store.delete(LCMMachine, lm.metadata.name, lm.metadata.namespace)
            except NotFound:
                pass
        await remove_finalizer(self.store, machine, FINALIZER)
        log.info("machine %s released by LCM", name)
        return None

    async def _drain(self, lm: LCMMachine | None) -> tuple[bool, str]:
        if lm is None:
            return True, "NoNode"
        hb = cond.get(lm.status, HEARTBEAT)
        if not lm.status.hostname or (hb is not None and hb.reason == "HeartbeatMissing"):
            return True, "AgentGone"
        if lm.status.cordoned and lm.spec.cordoned:
            return True, "Drained"

        def cordon(obj: LCMMachine) -> bool:
            if obj.spec.cordoned:
                return False
            obj.spec.cordoned = True
            return True

        await patch(self.store, lm, cordon)
        return False, lm.status.cordon_error or "waiting for the agent to cordon and drain the node"
