"""Where an LCMMachine stands, computed from its spec and what its agent reported (pure).

Uninitialized (no agent yet) -> Pending (agent reported hostname/IP, nothing run) ->
Prepare (prepare items unfinished) -> Deploy (deploy items unfinished) -> Ready. A machine
that was Ready at a release and now has unfinished items is in Upgrade (its release
changed) or Reconfigure (same release, items changed). An item counts as finished only
when the agent reported it Done with the hash of the item now in spec; an item being
retried after a failure still counts as failed (its message kept) until it succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.lcm.items import item_hash, ordered
from shared.models import LCMMachine

UNINITIALIZED = "Uninitialized"
PENDING = "Pending"
PREPARE = "Prepare"
DEPLOY = "Deploy"
READY = "Ready"
RECONFIGURE = "Reconfigure"
UPGRADE = "Upgrade"


@dataclass
class ItemsView:
    done: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    failed: tuple[str, str] | None = None  # (item, message)
    pending_phases: set[str] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return not self.pending and not self.running and self.failed is None

    @property
    def started(self) -> bool:
        return bool(self.done or self.running or self.failed)


def items_view(lm: LCMMachine) -> ItemsView:
    view = ItemsView()
    for item in ordered(lm.spec.state_items):
        st = lm.status.state_items.get(item.name)
        current = st is not None and st.hash == item_hash(item)
        if current and st.state == "Done":
            view.done.append(item.name)
            continue
        view.pending_phases.add(item.phase)
        if current and st.state == "Failed" and view.failed is None:
            view.failed = (item.name, st.message or "failed")
        elif current and st.state == "Running":
            view.running.append(item.name)
            if st.message and view.failed is None:  # retrying after a failure
                view.failed = (item.name, st.message)
        else:
            view.pending.append(item.name)
    return view


def machine_phase(lm: LCMMachine, view: ItemsView | None = None) -> str:
    view = view or items_view(lm)
    if not lm.status.hostname:
        return UNINITIALIZED
    if view.complete:
        return READY
    if lm.status.release and lm.status.release != lm.spec.release:
        return UPGRADE
    if lm.status.release:
        return RECONFIGURE
    if not view.started:
        return PENDING
    return PREPARE if "prepare" in view.pending_phases else DEPLOY
