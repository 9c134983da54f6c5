"""``free_port`` hands out ports an outgoing connection cannot take before the server binds."""

from __future__ import annotations

import socket

import pytest

from shared import natsserver
from shared.natsserver import _ephemeral_floor, free_port


def test_ports_are_below_the_ephemeral_range_and_never_repeated() -> None:
    floor = _ephemeral_floor()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(p < floor for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[0]))  # still free a moment later


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", free_port()))
        held.listen()
        taken = held.getsockname()[1]
        spare = free_port()
        picks = iter([taken, spare])
        monkeypatch.setattr(natsserver, "_handed_out", set())
        monkeypatch.setattr(natsserver.random, "randrange", lambda *_: next(picks))
        assert free_port() == spare
