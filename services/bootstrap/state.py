"""The bootstrap's progress file: which phase it reached and which objects it moved.

Written atomically (temp file + rename) after every step, so whatever interrupts a run,
``resume`` finds a consistent record and ``rollback`` knows exactly what to undo (by uid).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

Phase = Literal["started", "cluster-created", "pivoting", "pivoted", "verified", "cleaned"]
PHASES: tuple[Phase, ...] = (
    "started", "cluster-created", "pivoting", "pivoted", "verified", "cleaned"
)
STATE_FILE = "bootstrap-state.json"


class BootstrapError(Exception):
    """A problem the operator can act on; printed as one line, never a traceback."""


class ObjectRef(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    name: str
    namespace: str | None = None
    uid: str


class Target(msgspec.Struct, kw_only=True):
    """Where the management set is and what to create."""

    management_url: str
    prefix: str = "ccloud"
    health_urls: list[str] = msgspec.field(default_factory=list)
    cluster: str = "management"
    namespace: str = "default"
    region: str = "region-one"
    release: str = "mke-3-7-0"
    machines: int = 3


class BootstrapState(msgspec.Struct, kw_only=True):
    phase: Phase = "started"
    target: Target
    moved: list[ObjectRef] = msgspec.field(default_factory=list)
    # Machine uids whose simulated-provider node record was copied into management.
    nodes: list[str] = msgspec.field(default_factory=list)
    error: str = ""

    def reached(self, phase: Phase) -> bool:
        return PHASES.index(self.phase) >= PHASES.index(phase)


def path(data: Path) -> Path:
    return data / STATE_FILE


def load(data: Path) -> BootstrapState | None:
    p = path(data)
    if not p.exists():
        return None
    try:
        return msgspec.json.decode(p.read_bytes(), type=BootstrapState)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise BootstrapError(f"{p} is damaged ({e}); remove the folder to start over") from None


def save(data: Path, state: BootstrapState) -> None:
    data.mkdir(parents=True, exist_ok=True)
    p = path(data)
    tmp = p.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(state)))
    os.replace(tmp, p)
