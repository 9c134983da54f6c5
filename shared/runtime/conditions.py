"""Condition helpers: the transition time changes only when the status really changes."""

from __future__ import annotations

from shared.models import Condition, Status, now
from shared.models.meta import Severity

READY = "Ready"


def get(status: Status, type_: str) -> Condition | None:
    return next((c for c in status.conditions if c.type == type_), None)


def is_true(status: Status, type_: str) -> bool:
    c = get(status, type_)
    return c is not None and c.status == "True"


def _set(status: Status, cond: Condition) -> None:
    old = get(status, cond.type)
    if old is not None and old.status == cond.status:
        cond.last_transition_time = old.last_transition_time
    else:
        cond.last_transition_time = now()
    status.conditions = [c for c in status.conditions if c.type != cond.type] + [cond]
    status.conditions.sort(key=lambda c: (c.type != READY, c.type))


def mark_true(status: Status, type_: str, reason: str = "", message: str = "") -> None:
    _set(status, Condition(type=type_, status="True", reason=reason, message=message))


def mark_false(
    status: Status, type_: str, reason: str, message: str = "", severity: Severity = "Warning"
) -> None:
    _set(
        status,
        Condition(type=type_, status="False", reason=reason, message=message, severity=severity),
    )


def mark_unknown(status: Status, type_: str, reason: str, message: str = "") -> None:
    _set(status, Condition(type=type_, status="Unknown", reason=reason, message=message))


def remove(status: Status, type_: str) -> None:
    status.conditions = [c for c in status.conditions if c.type != type_]


def summarize(status: Status, types: list[str]) -> None:
    """Set Ready from ``types``: the first one not True (by severity order) explains why."""
    order = {"Error": 0, "Warning": 1, "Info": 2, "": 3}
    bad = [c for t in types if (c := get(status, t)) is not None and c.status != "True"]
    missing = [t for t in types if get(status, t) is None]
    if bad:
        worst = min(bad, key=lambda c: order.get(c.severity, 3))
        mark_false(status, READY, worst.reason, worst.message, worst.severity or "Info")
    elif missing:
        mark_false(status, READY, "Pending", f"waiting for {', '.join(missing)}", "Info")
    else:
        mark_true(status, READY, "Ready")


# A Machine is Ready when its node exists (its provider's condition) and runs what it must
# (LCM's): the two halves have different writers.
PROVIDER_READY = "ProviderReady"
LCM_READY = "LCMReady"
MACHINE_READY_FROM = [PROVIDER_READY, LCM_READY]
# Present while the Machine is in maintenance (LCM's): its node is out of service on purpose.
MAINTENANCE = "Maintenance"
RUNNING = "Running"


def summarize_machine(status: Status) -> None:
    """Ready and phase of a Machine; each writer of either half passes this as ``derive``
    to its ``status_writer``, so Ready changes in the same write as the half that moved it.

    A running Machine in maintenance shows phase ``Maintenance`` and is not Ready (reason
    ``Maintenance``, unless a half reports an error, which stays the reason): the provider
    keeps writing ``Running``, and this turns it into ``Maintenance`` in the same write, so
    the two writers never flap the phase. A Machine being made or deleted shows that."""
    summarize(status, MACHINE_READY_FROM)
    maintenance = get(status, MAINTENANCE)
    if maintenance is None:
        if status.phase == MAINTENANCE:
            status.phase = RUNNING if is_true(status, PROVIDER_READY) else "Provisioning"
        return
    if status.phase not in ("", RUNNING, MAINTENANCE):
        return
    status.phase = MAINTENANCE
    ready = get(status, READY)
    if ready is None or ready.severity != "Error":
        mark_false(status, READY, MAINTENANCE, f"in maintenance: {maintenance.message}", "Info")
