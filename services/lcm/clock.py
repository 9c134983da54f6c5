"""Heartbeat timestamps with sub-second precision (RFC 3339, UTC) and their age."""

from __future__ import annotations

import datetime as dt


def stamp(at: float | None = None) -> str:
    """Now (or ``at``, seconds since the epoch) in RFC 3339 with milliseconds."""
    when = dt.datetime.now(dt.UTC) if at is None else dt.datetime.fromtimestamp(at, dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def age(ts: str) -> float | None:
    """Seconds since ``ts``; None when it is empty or unreadable."""
    if not ts:
        return None
    try:
        then = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt.datetime.now(dt.UTC) - then).total_seconds()
