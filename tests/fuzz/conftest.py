"""A gateway process for the fuzz pass, and a sync view of its store's write sequence.

Schemathesis drives requests synchronously, so the gateway runs as its own process
(``python -m services.api``) on the session's real nats-server. Every write to the store
is a new message in the objects bucket's stream, so that stream's last sequence tells
exactly whether a request changed anything; a background event loop answers that from
sync test code.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import nats
import pytest
import yaml

from services.api.auth import user_entry
from shared.natsserver import NatsServer, die_with_parent, free_port

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
TOKEN = "fuzz-operator-token"


class LoopThread:
    """An asyncio loop in a daemon thread, for the async NATS client from sync tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclass
class Gateway:
    url: str
    bucket: str
    proc: subprocess.Popen[bytes]
    log: Path
    loop: LoopThread
    nc: Any

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def write_seq(self) -> int:
        """The objects bucket's last stream sequence: it moves on every store write."""

        async def seq() -> int:
            info = await self.nc.jetstream().stream_info(f"KV_{self.bucket}")
            return info.state.last_seq

        return self.loop.run(seq())

    def writes_since(self, seq: int) -> list[str]:
        """The keys (kind/namespace/name) written after ``seq``, for failure messages."""

        async def keys() -> list[str]:
            js = self.nc.jetstream()
            info = await js.stream_info(f"KV_{self.bucket}")
            out = []
            for s in range(seq + 1, info.state.last_seq + 1):
                msg = await js.get_msg(f"KV_{self.bucket}", s)
                out.append(f"{msg.subject} (op {(msg.headers or {}).get('KV-Operation', 'PUT')})")
            return out

        return self.loop.run(keys())

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


@pytest.fixture(scope="module")
def gateway(nats_server: NatsServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Gateway]:
    work = tmp_path_factory.mktemp("fuzz")
    prefix = "fuzz" + os.urandom(4).hex()
    tokens = work / "tokens.yaml"
    tokens.write_text(yaml.safe_dump({"users": [user_entry("ops", TOKEN, operator=True)]}))
    port = free_port()
    log = work / "api.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.api", "--nats-url", nats_server.url,
             "--prefix", prefix, "--port", str(port), "--tokens-file", str(tokens),
             "--audit-log", str(work / "audit.log"), "--data-dir", str(work / "data")],
            cwd=REPO, stdout=logf, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                break
        except (urllib.error.URLError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"gateway did not start:\n{log.read_text()}")
            time.sleep(0.1)
    loop = LoopThread()
    nc = loop.run(nats.connect(nats_server.url))
    gw = Gateway(url, f"{prefix}-objects", proc, log, loop, nc)
    try:
        yield gw
    finally:
        loop.run(nc.close())
        loop.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
