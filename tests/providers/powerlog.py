"""A simulated provider's node table that logs every power change asked of it."""

from __future__ import annotations

import time

from services.providers.simulated.nodes import MemoryNodes, SimNode


class PowerLog(MemoryNodes):
    """In-memory nodes; ``log`` holds (machine uid, "On"/"Off", time) per power request that
    changed what the node was heading for (the simulated provider drops repeats itself)."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, str, float]] = []

    async def put(self, node: SimNode) -> None:
        old = await self.get(node.machine_uid)
        if node.power_target and (old is None or old.power_target != node.power_target):
            self.log.append((node.machine_uid, node.power_target, time.time()))
        await super().put(node)

    def of(self, uid: str) -> list[str]:
        return [state for u, state, _ in self.log if u == uid]

    def times(self, uid: str, state: str) -> list[float]:
        return [t for u, s, t in self.log if u == uid and s == state]
