"""Watch streams: newline-delimited JSON events from the store's ``watch()``.

``?watch=true&resourceVersion=N`` resumes after N (exclusive), so a client reconnecting
with the last version it saw loses nothing. A version the store no longer serves is
answered ``410 Gone`` when the store says so before the stream starts, or as a final
``ERROR`` event carrying a 410 Status once streaming (as the Kubernetes API server does).
``timeoutSeconds`` ends the stream cleanly.

The same request upgraded to a websocket (subprotocol ``ccloud.watch.v1``, the bearer token
in a ``base64url.bearer.authorization.k8s.io.`` subprotocol, as kube-apiserver takes it)
carries each event as one text message; every failure, a 410 included, comes as an
``ERROR`` event before the close. A browser keeps six HTTP connections per host and a
chunked watch holds one for as long as it runs, so a console page following several
collections (or two tabs of it) ran out of them; websockets do not count against that.

With a ``labelSelector``, an object whose labels stop matching is sent as ``DELETED`` and
one that starts matching as ``ADDED``, as Kubernetes does, so a client's cache of the
selected set stays right. A stream that starts from the current objects knows exactly what
it has sent; a resumed one takes the objects matching when it resumes as already sent (a
change to an object that stopped matching between the client's version and the resume
shows as nothing rather than DELETED: the store keeps no old labels to tell).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from aiohttp import web

from services.api.auth import User
from services.api.errors import ApiError, status_body
from shared.models import Resource, redact, to_dict
from shared.store import Store, StoreError, WatchEvent

# How long the gateway waits for the store to accept a watch before sending headers;
# a Gone raised within it becomes an HTTP 410, later as an ERROR event.
START_WAIT = 0.25
# How often an idle stream checks that its client is still connected.
IDLE_CHECK = 2.0
WS_PROTOCOL = "ccloud.watch.v1"


def event_line(ev_type: str, obj: dict[str, Any]) -> bytes:
    return (json.dumps({"type": ev_type, "object": obj}, separators=(",", ":")) + "\n").encode()


class _Chunked:
    """Events as newline-delimited JSON in a chunked HTTP body."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse(
            headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
        self.response.enable_chunked_encoding()
        # Connection: close. A browser that drops a watch (a console page left) otherwise
        # keeps the socket up to 5 s to drain the endless body for reuse (Chromium's body
        # drainer), and with 6 connections per host the next page's requests wait.
        self.response.force_close()

    async def open(self) -> None:
        await self.response.prepare(self.request)

    async def send(self, ev_type: str, obj: dict[str, Any]) -> None:
        await self.response.write(event_line(ev_type, obj))

    def gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    async def end(self) -> web.StreamResponse:
        with contextlib.suppress(ConnectionResetError):
            await self.response.write_eof()
        return self.response


class _Socket:
    """Events as websocket text messages; the client's close ends the watch."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.WebSocketResponse(protocols=(WS_PROTOCOL,), heartbeat=20.0)
        self._reader: asyncio.Future[None] | None = None

    async def open(self) -> None:
        await self.response.prepare(self.request)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        """Nothing is expected from the client but its close (read so it is seen)."""
        async for _ in self.response:
            pass

    async def send(self, ev_type: str, obj: dict[str, Any]) -> None:
        await self.response.send_str(event_line(ev_type, obj)[:-1].decode())

    def gone(self) -> bool:
        return self.response.closed or (self._reader is not None and self._reader.done())

    async def end(self) -> web.WebSocketResponse:
        if self._reader is not None:
            self._reader.cancel()
        with contextlib.suppress(Exception):
            await self.response.close()
        return self.response


def _wants_socket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


class WatchStreamer:
    """Runs watch streams for one store; ``shutdown()`` ends them all."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._stopping = asyncio.Event()

    async def shutdown(self) -> None:
        self._stopping.set()

    async def stream(
        self,
        request: web.Request,
        cls: type[Resource],
        namespace: str | None,
        *,
        user: User,
        match: Callable[[Mapping[str, str]], bool],
    ) -> web.StreamResponse:
        sink = _Socket(request) if _wants_socket(request) else _Chunked(request)
        rv = request.query.get("resourceVersion") or None
        timeout = request.query.get("timeoutSeconds")
        try:
            deadline = time.monotonic() + float(timeout) if timeout else None
        except ValueError:
            raise ApiError(400, f"timeoutSeconds must be a number, got {timeout!r}") from None

        def readable(obj: Resource) -> bool:
            return not (namespace is None and cls.NAMESPACED) or user.can(
                "watch", cls, obj.metadata.namespace
            )

        selected = bool(request.query.get("labelSelector"))
        shown: set[tuple[str | None, str]] = set()  # objects in the client's selected set
        if selected and rv:
            try:
                current = await self.store.list_all(cls, namespace)
            except StoreError as e:
                raise ApiError.from_store(e) from None
            shown = {(o.metadata.namespace, o.metadata.name)
                     for o in current if readable(o) and match(o.metadata.labels)}

        def outgoing(ev: WatchEvent) -> str | None:
            """The event type to send for ``ev`` (None: nothing), tracking the set."""
            obj = ev.object
            if not readable(obj):
                return None
            if not selected:
                return ev.type
            key = (obj.metadata.namespace, obj.metadata.name)
            if ev.type == "DELETED" or not match(obj.metadata.labels):
                if key not in shown:
                    return None
                shown.discard(key)
                return "DELETED"
            if key in shown:
                return ev.type
            shown.add(key)
            return "ADDED"

        events: AsyncIterator[WatchEvent] = aiter(
            self.store.watch(cls, namespace, resource_version=rv)
        )
        pending: asyncio.Future = asyncio.ensure_future(anext(events))
        stop = asyncio.ensure_future(self._stopping.wait())
        opened = False
        try:
            start_wait = START_WAIT
            if deadline is not None:
                start_wait = max(0.0, min(start_wait, deadline - time.monotonic()))
            await asyncio.wait(
                {pending, stop}, timeout=start_wait, return_when=asyncio.FIRST_COMPLETED
            )
            if (pending.done() and isinstance(pending.exception(), StoreError)
                    and isinstance(sink, _Chunked)):  # a socket hears it as an ERROR event
                raise ApiError.from_store(pending.exception())  # type: ignore[arg-type]
            await sink.open()
            opened = True
            while not stop.done():
                wait = IDLE_CHECK
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        break
                await asyncio.wait(
                    {pending, stop}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                if not pending.done():
                    if sink.gone():
                        break
                    continue
                try:
                    ev = pending.result()
                except StopAsyncIteration:
                    break
                except StoreError as e:
                    await sink.send("ERROR", status_body(e.code, str(e), reason=e.reason))
                    break
                ev_type = outgoing(ev)
                if ev_type is not None:
                    await sink.send(ev_type, redact(to_dict(ev.object), cls))
                pending = asyncio.ensure_future(anext(events))
            return await sink.end()
        except ConnectionResetError:
            return await sink.end() if opened else web.Response(status=499)
        finally:
            stop.cancel()
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]
