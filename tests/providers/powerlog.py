"""A simulated provider's node table that logs every power change asked of it."""

from __future__ import annotations

import time

from services.providers.simulated.nodes import MemoryNodes, SimNode


class PowerLog(MemoryNodes):
    """In-memory nodes; ``log`` holds (machine uid, "On"/"Off"/"Off (graceful)", time) per
    power request that changed what the node was heading for (the simulated provider drops
    repeats itself); "Off (graceful)" asks the OS to shut down."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, str, float]] = []

    async def put(self, node: SimNode) -> None:
        old = await self.get(node.machine_uid)
        if node.power_target and (old is None or (old.power_target, old.graceful) != (
                node.power_target, node.graceful)):
            what = f"{node.power_target} (graceful)" if node.graceful else node.power_target
            self.log.append((node.machine_uid, what, time.time()))
        await super().put(node)

    def of(self, uid: str) -> list[str]:
        return [state for u, state, _ in self.log if u == uid]

    def times(self, uid: str, state: str) -> list[float]:
        """When ``state`` was asked for ("Off" counts graceful offs too)."""
        return [t for u, s, t in self.log if u == uid and s.split(" ")[0] == state]
