"""Which machines may start upgrading now: the rolling-upgrade policy, kept pure.

Control-plane machines go one at a time and before any worker. Workers go in update
groups: the lowest ``index`` with machines still to do is active, every group with that
index runs at once, each with at most ``concurrentUpdates`` machines in flight. Machines
naming no (known) update group form the default group (index 0, one at a time). The
first failure among machines in flight stops the rollout: nothing new starts until it is
fixed. Machines never deployed yet are not part of a rollout (they simply deploy the
target release). Nor are machines in maintenance: they keep what they run, never count as
in flight or failed, and are never uncordoned by a rollout; once out of maintenance their
node is still drained, so one behind the target goes on straight to its new items.
A machine a graceful reboot has cordoned (``rebooting``) is the reboot's until it lets go:
while one is, no upgrade step starts (the two would drain and uncordon the same nodes), and
one behind the target counts as waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

State = Literal["deploying", "current", "waiting", "draining", "upgrading", "uncordoning",
                "maintenance", "rebooting"]
IN_FLIGHT: tuple[State, ...] = ("draining", "upgrading", "uncordoning")

DEFAULT_GROUP = ""


@dataclass(frozen=True)
class Group:
    name: str
    index: int = 0
    concurrent_updates: int = 1


@dataclass(frozen=True)
class MachineView:
    name: str
    role: str
    state: State
    group: str = DEFAULT_GROUP
    failure: str = ""  # the failing item's message while in flight
    behind: bool = False  # rebooting: not at the target release yet


@dataclass
class Plan:
    start: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.in_flight and not self.waiting


def state_of(
    *, spec_release: str, status_release: str, target: str, spec_cordoned: bool,
    status_cordoned: bool, maintenance: bool = False, rebooting: bool = False,
) -> State:
    if maintenance:
        return "maintenance"
    if rebooting:
        return "rebooting"
    if not status_release:
        return "deploying"
    if spec_release != target:
        return "draining" if spec_cordoned else "waiting"
    if status_release != target:
        return "upgrading"
    if spec_cordoned or status_cordoned:
        return "uncordoning"
    return "current"


def plan(machines: list[MachineView], groups: dict[str, Group]) -> Plan:
    out = Plan()
    out.in_flight = sorted(m.name for m in machines if m.state in IN_FLIGHT)
    rebooting = [m for m in machines if m.state == "rebooting"]
    out.waiting = sorted([m.name for m in machines if m.state == "waiting"]
                         + [m.name for m in rebooting if m.behind])
    out.failed = sorted((m.name, m.failure) for m in machines
                        if m.state in IN_FLIGHT and m.failure)
    if out.failed or rebooting:
        return out
    todo = [m for m in machines if m.state == "waiting" or m.state in IN_FLIGHT]
    cps = [m for m in todo if m.role == "control-plane"]
    if cps:
        if not any(m.state in IN_FLIGHT for m in cps):
            out.start = [min(m.name for m in cps)]
        return out

    def group_of(m: MachineView) -> Group:
        return groups.get(m.group) or Group(DEFAULT_GROUP)

    workers = [m for m in todo if m.role != "control-plane"]
    if not workers:
        return out
    active = min(group_of(m).index for m in workers)
    by_group: dict[str, list[MachineView]] = {}
    for m in workers:
        g = group_of(m)
        if g.index == active:
            by_group.setdefault(g.name, []).append(m)
    for name in sorted(by_group):
        members = by_group[name]
        g = groups.get(name) or Group(DEFAULT_GROUP)
        busy = sum(1 for m in members if m.state in IN_FLIGHT)
        free = max(g.concurrent_updates - busy, 0)
        out.start += sorted(m.name for m in members if m.state == "waiting")[:free]
    return out
