"""Driving a provider's MachineReconciler by hand in tests."""

from __future__ import annotations

import contextlib

from services.providers.machines import MachineReconciler
from shared.models import Machine
from shared.runtime import Request, TransientError
from tests.harness import Harness
from tests.waiting import eventually


async def passes_until_running(h: Harness, rec: MachineReconciler, req: Request, *,
                               timeout: float = 15.0, interval: float = 0.1) -> Machine:
    """Reconcile by hand, as the controller would after each retry, until the Machine runs."""

    async def running() -> Machine | None:
        with contextlib.suppress(TransientError):
            await rec.reconcile(req)
        got = await h.store.get(Machine, req.name, req.namespace)
        return got if got.status.phase == "Running" else None

    return await eventually(running, timeout=timeout, interval=interval, what="machine running")
