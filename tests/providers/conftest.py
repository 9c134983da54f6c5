"""Fixtures starting the real peers (sushy-tools emulator, govmomi simulator) and fakes,
and ``h``: the store, bus and bridge as the embedded default runs them."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from tests.harness import Harness, system
from tests.providers.peers import ImageServer, SushyEmulator, Vcsim, fake_system
from tests.providers.vcenter import admin_login, admin_logout


@pytest.fixture(scope="module")
def image_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageServer]:
    server = ImageServer(tmp_path_factory.mktemp("images")).start()
    server.add("ubuntu-22.04.iso")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redfish(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SushyEmulator]:
    """One emulator per module with eight powered-off systems; tests use distinct ones."""
    emu = SushyEmulator(tmp_path_factory.mktemp("sushy"), [fake_system(i) for i in range(1, 9)])
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def vcsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vcsim]:
    sim = Vcsim(tmp_path_factory.mktemp("vcsim"), username="admin", password="s3cret-vc")
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def admin(vcsim: Vcsim) -> Iterator[Any]:
    """The vSphere admin's own session (content); also plays the guest's VMware tools."""
    si = admin_login(vcsim)
    yield si.RetrieveContent()
    admin_logout(si)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: every read times out."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


@pytest.fixture
async def h(nc: NATS, prefix: str) -> AsyncIterator[Harness]:
    async with system(nc, prefix) as harness:
        yield harness
