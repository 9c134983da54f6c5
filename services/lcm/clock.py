"""Heartbeat timestamps with sub-second precision (RFC 3339, UTC) and their age."""

from __future__ import annotations

import datetime as dt


def stamp() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def age(ts: str) -> float | None:
    """Seconds since ``ts``; None when it is empty or unreadable."""
    if not ts:
        return None
    try:
        then = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt.datetime.now(dt.UTC) - then).total_seconds()
