"""What a MachineHealthCheck thinks of each machine, and what to do about it (pure).

Kept apart from the controller (``healthcheck.py``) so the judging can be tested with a
clock in hand. A machine is judged

- *skipped* while it is out of service on purpose or someone else's: in maintenance, being
  deleted, paused, cordoned by LCM (an upgrade drains it), or its cluster is upgrading -
  never remediated, and counted neither healthy nor unhealthy;
- *unhealthy* once one of the check's conditions has had its status for longer than its
  timeout (from the condition's lastTransitionTime, or from when the node came up if that
  is later: a Machine is not Ready while its node deploys, and that is no failure), or -
  before its node came up at all (deployed a release once) - ``nodeStartupTimeoutSeconds``
  after its provider reported the node running (else after the Machine was made);
- *pending* while such a timeout is still running (``recheck``: when it runs out);
- *healthy* otherwise.

As Cluster API counts, every covered machine that is not healthy - pending ones too - counts
against ``maxUnhealthy``: machines a partition cut off all at once flip their conditions a
second or two apart, and the first to time out must not be rebooted before the others show.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from services.lcm.lcmmachine import ITEMS_READY
from shared.models import (
    REBOOT_DONE_ANNOTATION,
    REBOOT_REQUEST_ANNOTATION,
    HealthCheckTarget,
    LCMMachine,
    Machine,
    MachineHealthCheckSpec,
    Remediation,
)
from shared.runtime import conditions as cond
from shared.runtime.paused import is_paused

State = Literal["healthy", "pending", "unhealthy", "skipped"]
Action = Literal["reboot", "resend", "wait", "give_up", "unanswered", "none"]
# How long a reboot request may go unanswered (or retryIntervalSeconds, if longer) before
# the check stops waiting for the provider: a power cycle takes minutes, not this long.
ANSWER_TIMEOUT = 600.0

UNHEALTHY_CONDITION = "UnhealthyCondition"
NODE_STARTUP_TIMEOUT = "NodeStartupTimeout"


@dataclass(frozen=True)
class Verdict:
    state: State
    reason: str = ""
    message: str = ""  # never a running count: it is written to the Machine as it stands
    recheck: float | None = None  # seconds until a pending timeout runs out


HEALTHY = Verdict("healthy")


def epoch(ts: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 UTC time (fractions optional); None if unset
    or unreadable."""
    if not ts:
        return None
    try:
        return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def node_started(lm: LCMMachine | None) -> bool:
    """Whether the machine's node ever came up: its agent finished a release once (as
    Cluster API asks for a nodeRef: the node joined)."""
    return lm is not None and bool(lm.status.release)


def up_since(lm: LCMMachine) -> float | None:
    """When the node last finished its items (ItemsReady True), if it has them all done."""
    c = cond.get(lm.status, ITEMS_READY)
    return epoch(c.last_transition_time) if c is not None and c.status == "True" else None


def skip_reason(machine: Machine, lm: LCMMachine | None, *, upgrading: bool) -> str:
    """Why the check leaves the machine alone ("" if it does not)."""
    if machine.deleting:
        return "Deleting"
    if machine.spec.maintenance or cond.get(machine.status, cond.MAINTENANCE) is not None:
        return "Maintenance"
    if is_paused(machine):
        return "Paused"
    if upgrading:
        return "ClusterUpgrading"
    if lm is not None and lm.spec.cordoned:
        return "Cordoned"
    return ""


def judge(machine: Machine, lm: LCMMachine | None, spec: MachineHealthCheckSpec, *,
          now: float, upgrading: bool = False) -> Verdict:
    if reason := skip_reason(machine, lm, upgrading=upgrading):
        return Verdict("skipped", reason)
    if lm is None or not node_started(lm):
        return _startup(machine, spec, now)
    up = up_since(lm)
    recheck: float | None = None
    for uc in spec.unhealthy_conditions:
        c = cond.get(machine.status, uc.type)
        since = epoch(c.last_transition_time) if c is not None else None
        if c is None or c.status != uc.status or since is None:
            continue
        since = max(since, up or since)
        left = since + uc.timeout_seconds - now
        if left <= 0:
            why = f" (reason {c.reason})" if c.reason else ""
            return Verdict("unhealthy", UNHEALTHY_CONDITION,
                           f"{uc.type} {uc.status} for more than {uc.timeout_seconds}s{why}")
        recheck = left if recheck is None else min(recheck, left)
    return Verdict("pending", recheck=recheck) if recheck is not None else HEALTHY


def _startup(machine: Machine, spec: MachineHealthCheckSpec, now: float) -> Verdict:
    timeout = spec.node_startup_timeout_seconds
    if not timeout:
        return HEALTHY
    running = cond.get(machine.status, cond.PROVIDER_READY)
    if running is not None and running.status == "True":
        since = epoch(running.last_transition_time)
    else:
        since = epoch(machine.metadata.creation_timestamp or "")
    if since is None:
        return HEALTHY
    left = since + timeout - now
    if left > 0:
        return Verdict("pending", recheck=left)
    return Verdict("unhealthy", NODE_STARTUP_TIMEOUT,
                   f"its node did not come up within {timeout}s")


def allowed_unhealthy(max_unhealthy: int | str, expected: int) -> int:
    """``maxUnhealthy`` as a count of ``expected`` machines (a percentage rounded down)."""
    if isinstance(max_unhealthy, int):
        return max_unhealthy
    return math.floor(expected * int(max_unhealthy.rstrip("%")) / 100)


@dataclass
class Assessment:
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    expected: int = 0  # the machines the check covers (deleting ones aside)
    healthy: int = 0
    limit: int = 0  # maxUnhealthy as a count

    @property
    def not_healthy(self) -> list[str]:
        """Machines that count against maxUnhealthy: unhealthy or pending."""
        return sorted(n for n, v in self.verdicts.items() if v.state in ("unhealthy", "pending"))

    @property
    def unhealthy(self) -> list[str]:
        return sorted(n for n, v in self.verdicts.items() if v.state == "unhealthy")

    @property
    def short_circuited(self) -> bool:
        return len(self.not_healthy) > self.limit

    @property
    def remediations_allowed(self) -> int:
        return max(0, self.limit - len(self.not_healthy))

    @property
    def recheck(self) -> float | None:
        return _soonest(v.recheck for v in self.verdicts.values())


def assess(machines: Iterable[Machine], lms: dict[str, LCMMachine],
           spec: MachineHealthCheckSpec, *, now: float, upgrading: bool = False) -> Assessment:
    """Judge every machine (``lms``: their LCMMachines by machine name)."""
    out = Assessment()
    for m in machines:
        v = judge(m, lms.get(m.metadata.name), spec, now=now, upgrading=upgrading)
        out.verdicts[m.metadata.name] = v
        out.expected += not m.deleting
        out.healthy += v.state == "healthy"
    out.limit = allowed_unhealthy(spec.max_unhealthy, out.expected)
    return out


@dataclass(frozen=True)
class Step:
    action: Action
    recheck: float | None = None  # seconds until the next attempt (or giving up) is due


def next_step(target: HealthCheckTarget | None, machine: Machine, remediation: Remediation, *,
              now: float) -> Step:
    """What to do for an unhealthy machine, given the check's record of it (``target``)
    and the reboot annotations on it: the ids there are the state, so a restart of either
    side in between resumes where it stood.

    reboot: ask for a (first or next) power cycle; resend: the latest request was recorded
    but never reached the Machine; wait: the provider is at it, or the retry interval since
    the last request has not passed; give_up: retryLimit reboots did not help; unanswered:
    the provider has not answered the latest request within ``ANSWER_TIMEOUT`` (or the
    retry interval, if longer) - it is down, or cannot reach the node's power."""
    if target is None:
        return Step("reboot")
    if target.state == "Failed":
        return Step("none")
    ann = machine.metadata.annotations
    ours = target.request_id
    if not ours:
        return Step("reboot")
    last = epoch(target.last_attempt_time)
    if ann.get(REBOOT_DONE_ANNOTATION) != ours:
        if ann.get(REBOOT_REQUEST_ANNOTATION) != ours:
            return Step("resend")
        left = (last or now) + max(remediation.retry_interval_seconds, ANSWER_TIMEOUT) - now
        return Step("wait", recheck=left) if left > 0 else Step("unanswered")
    due = (last or now) + remediation.retry_interval_seconds - now
    if due > 0:
        return Step("wait", recheck=due)
    if target.attempts >= remediation.retry_limit:
        return Step("give_up")
    return Step("reboot")


def _soonest(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None
