"""One decision at a time about taking a cluster's nodes out.

The rollout (an upgrade step's cordon) and the graceful reboot (its drain) each look at a
cluster's nodes, decide that none is out, and cordon one. Each sees the other's cordon
only once it is written, so two passes deciding in the same instant could take two nodes
out at once. Both hold their cluster's lock from reading its nodes to writing the cordon:
the second then reads the first's cordon (the store's lists include every write finished
before them) and waits. A process-local lock is enough because LCM's controllers run in
the region's leader only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Disruptions:
    """Per-cluster locks, made on first use and dropped once nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str | None, str], asyncio.Lock] = {}
        self._users: dict[tuple[str | None, str], int] = {}

    @contextlib.asynccontextmanager
    async def deciding(self, namespace: str | None, cluster: str) -> AsyncIterator[None]:
        key = (namespace, cluster)
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]

    def contenders(self, namespace: str | None, cluster: str) -> int:
        """Passes holding or waiting for ``cluster``'s lock (for tests and debugging)."""
        return self._users.get((namespace, cluster), 0)
