"""Watch everything a provider service writes or says for secret values.

Three channels, as the issue names them: status (the stored objects, whole, as JSON),
events (every message on the bus under the test's prefix, headers included) and logs
(every record at DEBUG from every logger, libraries included, formatted as
``shared.service`` formats them, with tracebacks). A secret counts as leaked in its raw
form and as the base64 ``user:password`` of HTTP basic auth.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NATS

from shared.models import Resource

SERVICE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # shared.service.main


def forms(secret: str, username: str = "") -> list[str]:
    """The ways a secret can show up in text."""
    out = [secret]
    if username:
        out.append(base64.b64encode(f"{username}:{secret}".encode()).decode())
    return out


class LeakWatch:
    def __init__(self, nc: NATS, prefix: str, caplog: pytest.LogCaptureFixture) -> None:
        self.nc = nc
        self.prefix = prefix
        self.caplog = caplog
        self.bus: list[bytes] = []
        self._sub: Any = None
        self._formatter = logging.Formatter(SERVICE_FORMAT)

    async def start(self) -> LeakWatch:
        self.caplog.set_level(logging.DEBUG)  # root and every library logger below it

        async def keep(msg: Any) -> None:
            self.bus.append(msg.subject.encode() + b" " + msg.data
                            + repr(msg.headers or {}).encode())

        self._sub = await self.nc.subscribe(f"{self.prefix}.>", cb=keep)
        return self

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    def log_text(self) -> str:
        return "\n".join(self._formatter.format(r) for r in self.caplog.records)

    def assert_clean(self, secrets: list[str], objects: list[Resource]) -> None:
        """No secret form in logs, bus messages or the objects' stored status."""
        assert self.caplog.records, "nothing was logged: the watch saw nothing"
        assert self.bus, "nothing was published: the watch saw nothing"
        logs = self.log_text()
        events = b"\n".join(self.bus).decode(errors="replace")
        for obj in objects:
            status = msgspec.json.encode(obj.status).decode()
            for secret in secrets:
                assert secret not in status, f"secret in {obj.kind} {obj.metadata.name} status"
        for secret in secrets:
            assert secret not in logs, f"secret in the logs: {_around(logs, secret)}"
            assert secret not in events, f"secret in a bus event: {_around(events, secret)}"


def _around(text: str, secret: str) -> str:
    i = text.find(secret)
    return text[max(0, i - 200): i + 50].replace(secret, "<SECRET>")
