"""The management side's real controllers, started on a test harness.

The simulated provider's Machine controller (nodes in ``<prefix>-simulated-nodes``, the
bucket ``python -m services.providers.simulated`` uses) and LCM's controllers, started the
way ``services.providers.service`` and ``services.lcm.service`` build them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.lcm import service as lcm_service
from services.lcm.config import LCMSettings
from services.providers.machines import MachineReconciler
from services.providers.simulated import SimulatedConfig, SimulatedProvider
from services.providers.simulated.nodes import KVNodes, nodes_bucket
from services.providers.steps import Backoff
from services.providers.targets import SingleTarget
from services.release.defaults import ensure_default_releases
from shared.models import Machine
from shared.runtime import Controller
from tests.harness import Harness


@dataclass
class ManagementControllers:
    provider: SimulatedProvider
    nodes: KVNodes
    machines: Controller  # the provider's Machine controller
    lcm: list[Controller]

    def by_name(self, name: str) -> Controller:
        return next(c for c in [self.machines, *self.lcm] if c.name == name)


@contextlib.asynccontextmanager
async def running(h: Harness, region: str) -> AsyncIterator[ManagementControllers]:
    await ensure_default_releases(h.store)
    nodes = KVNodes(h.nc, bucket=nodes_bucket(h.settings.prefix))
    await nodes.start()
    provider = SimulatedProvider(SimulatedConfig(), nodes=nodes)
    machines = Controller(
        name="provider-simulated-machine", kind=Machine, store=h.store, bus=h.bus,
        region=region, workers=2, resync_period=None,
        reconciler=MachineReconciler(h.store, "simulated", SingleTarget(provider),
                                     region=region, poll_interval=0.1,
                                     backoff=Backoff(initial=0.1, cap=0.5)),
    )
    lcm = lcm_service.controllers(h.store, h.bus, LCMSettings(poll_interval=0.2, workers=2),
                                  region=region)
    started: list[Controller] = []
    try:
        for c in [machines, *lcm]:
            c.resync_period = None
            await c.start()
            started.append(c)
        yield ManagementControllers(provider, nodes, machines, lcm)
    finally:
        for c in reversed(started):
            await c.stop()
