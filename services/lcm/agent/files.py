"""Opening a node's files for writing, their directory made when it is missing."""

from __future__ import annotations

from pathlib import Path
from typing import IO


def open_for_write(path: Path, mode: str = "w") -> IO[str]:
    """``open(path, mode)``, making ``path``'s directory first only when the open finds it
    missing (not made yet, or removed since): a mkdir before every write - two syscalls and
    an exception once it exists - was a third of what an item cost a fleet of simulated
    nodes."""
    try:
        return open(path, mode)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, mode)
