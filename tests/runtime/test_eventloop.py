"""Service processes run on uvloop unless told otherwise; a bad choice is a one-line error."""

from __future__ import annotations

import asyncio

import pytest

from shared import eventloop


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CCLOUD_EVENT_LOOP", raising=False)
    assert eventloop.run(_loop_module()).startswith("uvloop")


def test_the_standard_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCLOUD_EVENT_LOOP", "asyncio")
    assert eventloop.run(_loop_module()).startswith("asyncio")


def test_a_bad_choice_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCLOUD_EVENT_LOOP", "tokio")
    coro = _loop_module()
    with pytest.raises(SystemExit, match="CCLOUD_EVENT_LOOP='tokio' is not one of uvloop, asyncio"):
        eventloop.run(coro)
    assert coro.cr_frame is None  # closed, not left to warn "never awaited"
