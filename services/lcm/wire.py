"""Typed messages of the agent API (``services.lcm.endpoint``), shared with the agent.

``MachineDetails`` is what an agent fetches: its items with their hashes in apply order,
whether it must be cordoned, the intervals it must keep, and the secrets its items name by
reference (``tokenRef``), keyed by that reference - sent to this machine's agent only, never
stored. ``AgentReport`` is what it posts back; ``items`` holds only the items it knows
about, keyed by name.

A details GET may long-poll (``If-None-Match`` plus ``?wait=``): ``MAX_WAIT`` is the longest
hold the endpoint grants; a longer ``wait`` is cut to it.
"""

from __future__ import annotations

from msgspec import Struct, field

from shared.models import StateItem, StateItemStatus

MAX_WAIT = 60.0


class DetailItem(Struct, kw_only=True, rename="camel"):
    item: StateItem
    hash: str


class MachineDetails(Struct, kw_only=True, rename="camel"):
    namespace: str
    name: str
    cluster: str
    role: str
    release: str
    items: list[DetailItem] = field(default_factory=list)
    cordoned: bool = False
    heartbeat_interval: float = 10.0
    poll_interval: float = 5.0
    progress_interval: float = 1.0
    secrets: dict[str, str] = field(default_factory=dict)


class AgentReport(Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    hostname: str = ""
    ip: str = ""
    items: dict[str, StateItemStatus] = field(default_factory=dict)
    cordoned: bool | None = None
    # The last cordon/drain or uncordon failure ("": none); None: not reported.
    cordon_error: str | None = None


class ErrorBody(Struct, kw_only=True):
    error: str
