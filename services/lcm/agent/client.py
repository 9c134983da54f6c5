"""HTTP client of the regional LCM endpoint (see ``services.lcm.endpoint`` for the routes)."""

from __future__ import annotations

import aiohttp
import msgspec

from services.lcm.wire import AgentReport, MachineDetails

REQUEST_TIMEOUT = 10.0

_enc = msgspec.json.Encoder()
_details = msgspec.json.Decoder(MachineDetails)


class EndpointError(Exception):
    """The endpoint could not be reached or answered with an unexpected status."""


class Unauthorized(EndpointError):
    """The token does not open this machine: retrying cannot help."""


class AgentClient:
    def __init__(self, endpoint: str, namespace: str, name: str, token: str) -> None:
        self.base = f"{endpoint.rstrip('/')}/lcm/v1/machines/{namespace}/{name}"
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            headers=self._headers, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, url: str, body: bytes | None = None) -> bytes | None:
        assert self._session is not None, "client not started"
        try:
            async with self._session.request(method, url, data=body) as resp:
                data = await resp.read()
                if resp.status == 401:
                    raise Unauthorized(data.decode(errors="replace"))
                if resp.status == 404:
                    return None
                if resp.status >= 300:
                    raise EndpointError(f"{method} {url}: HTTP {resp.status}: {data[:200]!r}")
                return data
        except (aiohttp.ClientError, TimeoutError) as e:
            raise EndpointError(f"{method} {url}: {type(e).__name__}: {e}") from None

    async def details(self) -> MachineDetails | None:
        """This machine's deployment details; None while the endpoint does not know it."""
        data = await self._call("GET", self.base)
        if data is None:
            return None
        try:
            return _details.decode(data)
        except msgspec.ValidationError as e:
            raise EndpointError(f"malformed details: {e}") from None

    async def report(self, report: AgentReport) -> bool:
        return await self._call("POST", self.base + "/status", _enc.encode(report)) is not None

    async def heartbeat(self) -> bool:
        return await self._call("POST", self.base + "/heartbeat", b"{}") is not None
