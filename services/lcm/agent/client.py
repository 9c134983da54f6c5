"""HTTP client of the regional LCM endpoint (see ``services.lcm.endpoint`` for the routes).

The client remembers the ETag of the details it last returned and sends it as
``If-None-Match``: ``details(wait=s)`` is then a long-poll that returns as soon as the
details change, or after ``s`` with the same (remembered) details. A held request's timeout
is its wait plus ``REQUEST_TIMEOUT``, so the client never gives up before the endpoint.
"""

from __future__ import annotations

import math
import ssl as ssl_
import time

import aiohttp
import msgspec

from services.lcm.wire import MAX_WAIT, AgentReport, MachineDetails

REQUEST_TIMEOUT = 10.0

_enc = msgspec.json.Encoder()
_details = msgspec.json.Decoder(MachineDetails)


class EndpointError(Exception):
    """The endpoint could not be reached or answered with an unexpected status."""


class Unauthorized(EndpointError):
    """The token does not open this machine: retrying cannot help."""


class AgentClient:
    """One machine's calls. ``session``/``poll_session`` may be shared (a fleet of agents in
    one process); held GETs go on ``poll_session`` so they never queue short calls behind
    them in a bounded pool. Without them the client owns one session."""

    def __init__(
        self, endpoint: str, namespace: str, name: str, token: str, *,
        session: aiohttp.ClientSession | None = None,
        poll_session: aiohttp.ClientSession | None = None,
        ssl: ssl_.SSLContext | None = None,
    ) -> None:
        self.base = f"{endpoint.rstrip('/')}/lcm/v1/machines/{namespace}/{name}"
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._own = session is None
        self._session = session
        self._poll_session = poll_session or session
        self._ssl = ssl  # trust for an https endpoint (the session this client makes)
        self.etag = ""
        self._last: MachineDetails | None = None
        # Monotonic send time of the last call the endpoint answered for a known machine:
        # the endpoint counts any such call as a sign of life when it arrives.
        self.answered_at = -math.inf

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
                connector=aiohttp.TCPConnector(ssl=self._ssl if self._ssl else True),
            )
            self._poll_session = self._session

    async def close(self) -> None:
        if self._own and self._session is not None:
            await self._session.close()
            self._session = self._poll_session = None

    async def _call(
        self, method: str, url: str, body: bytes | None = None, *,
        headers: dict[str, str] | None = None, wait: float = 0.0,
    ) -> tuple[int, bytes, str] | None:
        """(status, body, ETag) of a 2xx/304 answer; None for 404."""
        session = self._poll_session if wait > 0 else self._session
        assert session is not None, "client not started"
        sent = time.monotonic()
        try:
            async with session.request(
                method, url, data=body, headers={**self._headers, **(headers or {})},
                timeout=aiohttp.ClientTimeout(total=wait + REQUEST_TIMEOUT),
            ) as resp:
                data = await resp.read()
                status, etag = resp.status, resp.headers.get("ETag", "")
        except (aiohttp.ClientError, TimeoutError) as e:
            raise EndpointError(f"{method} {url}: {type(e).__name__}: {e}") from None
        if status == 401:
            raise Unauthorized(data.decode(errors="replace"))
        if status == 404:
            return None
        if status >= 300 and status != 304:
            raise EndpointError(f"{method} {url}: HTTP {status}: {data[:200]!r}")
        self.answered_at = max(self.answered_at, sent)
        return status, data, etag

    async def details(self, *, wait: float = 0.0) -> MachineDetails | None:
        """This machine's deployment details; None while the endpoint does not know it.

        With ``wait`` > 0 and details fetched before, hold until they change or ``wait``
        (at most ``MAX_WAIT``) runs out; then the remembered details come back. With none
        fetched, the endpoint holds only while the machine is unknown (until LCM makes it).
        """
        wait = min(wait, MAX_WAIT)
        url = f"{self.base}?wait={wait:g}" if wait > 0 else self.base
        headers = {"If-None-Match": self.etag} if self.etag and self._last else None
        got = await self._call("GET", url, headers=headers, wait=wait)
        if got is None:
            self.etag, self._last = "", None
            return None
        status, data, etag = got
        if status == 304 and self._last is not None:
            return self._last
        try:
            details = _details.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise EndpointError(f"malformed details: {e}") from None
        self.etag, self._last = etag, details
        return details

    async def report(self, report: AgentReport) -> bool:
        return await self._call("POST", self.base + "/status", _enc.encode(report)) is not None

    async def heartbeat(self) -> bool:
        return await self._call("POST", self.base + "/heartbeat", b"{}") is not None
