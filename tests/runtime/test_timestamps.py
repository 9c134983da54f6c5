"""Timestamps are RFC 3339 UTC at seconds precision, and follow the clock."""

from __future__ import annotations

import calendar
import re
import time

from shared.models.meta import now

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def _seconds(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


def test_now_is_the_current_second_in_rfc3339_utc() -> None:
    before = int(time.time())
    stamp = now()
    after = int(time.time())
    assert RFC3339.match(stamp), stamp
    assert before <= _seconds(stamp) <= after


def test_now_moves_with_the_clock() -> None:
    first = _seconds(now())
    deadline = time.monotonic() + 5
    while _seconds(now()) == first:  # a busy wait on the clock itself, bounded
        assert time.monotonic() < deadline, "now() did not advance within 5 s"
        time.sleep(0.01)
    assert _seconds(now()) > first
