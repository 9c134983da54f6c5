"""A lean HTTP/1.1 keep-alive client for the load generator, nothing more.

The load process shares the machine's two cores with the system it measures: aiohttp's
client spent ~0.33 ms of CPU per request at 1,000 requests/s, a sixth of the whole write
path, taken from the services under test. This client writes one prebuilt request per
call on a pooled connection and reads back the status and a ``Content-Length`` body; it
refuses anything else (chunked or unframed bodies) with a clear error rather than guess.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection closed: {exc}"))

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._waiter is None or self._waiter.done():
            return
        try:
            status = self._response()
        except ValueError as e:
            self._waiter.set_exception(e)
            return
        if status is not None:
            self._waiter.set_result(status)

    def _response(self) -> int | None:
        """The status of the buffered response once it is complete, else None."""
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0 if status in (204, 304) or status < 200 else None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                raise ValueError(f"unsupported response framing: {line}")
        if length is None:
            raise ValueError("response without Content-Length")
        if len(self._buf) < end + 4 + length:
            return None
        del self._buf[:end + 4 + length]
        return status

    async def exchange(self, request: bytes) -> int:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._waiter


class Client:
    """Up to ``connections`` keep-alive connections to one ``http://host:port``."""

    def __init__(self, base_url: str, *, connections: int, headers: dict[str, str]) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"only http://host:port URLs are supported, not {base_url!r}")
        self.host, self.port = url.hostname, url.port or 80
        self._head = "".join(f"{k}: {v}\r\n" for k, v in
                             {"Host": url.netloc, **headers}.items())
        self._limit = connections
        self._opened = 0
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()

    async def _acquire(self) -> _Connection:
        while True:
            if self._idle.empty() and self._opened < self._limit:
                self._opened += 1
                try:
                    _, conn = await asyncio.get_running_loop().create_connection(
                        _Connection, self.host, self.port)
                except BaseException:
                    self._opened -= 1
                    raise
                return conn
            conn = await self._idle.get()
            if not conn.closed:
                return conn
            self._opened -= 1

    async def request(self, method: str, path: str, body: bytes = b"") -> int:
        """Send one request; its status (raises on a transport or framing error)."""
        head = f"{method} {path} HTTP/1.1\r\n{self._head}Content-Length: {len(body)}\r\n\r\n"
        conn = await self._acquire()
        try:
            status = await conn.exchange(head.encode("latin-1") + body)
        except BaseException:
            if conn.transport is not None:
                conn.transport.close()
            self._opened -= 1
            raise
        self._idle.put_nowait(conn)
        return status

    def close(self) -> None:
        while not self._idle.empty():
            conn = self._idle.get_nowait()
            if conn.transport is not None:
                conn.transport.close()
