"""The stream's last sequence, asked for once per event-loop turn however many ask.

Every informer read proves freshness against the stream's last sequence, and a reconcile
lists several kinds: each list cost a full STREAM.INFO round trip, parsed into nats-py's
dataclasses (config, timestamps, cluster info) to read one number. Here the request is
the same, but its answer is decoded for ``state.last_seq`` alone, and callers that ask
during the same loop turn share one request - sent after all of them asked, so its answer
still covers every write committed before each call, which is all ``fresh()`` needs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.js.errors import APIError, ServiceUnavailableError

TIMEOUT = 5.0


class _State(msgspec.Struct):
    last_seq: int = 0


class _Info(msgspec.Struct):
    state: _State | None = None
    error: dict[str, Any] | None = None


_decode = msgspec.json.Decoder(_Info).decode


class LastSeq:
    """``await last_seq()``: the last sequence of ``stream`` as of a request sent after the
    call began."""

    def __init__(self, nc: NATS, stream: str, *, api_prefix: str = "$JS.API") -> None:
        self._nc = nc
        self._subject = f"{api_prefix}.STREAM.INFO.{stream}"
        self._next: asyncio.Future[int] | None = None  # the request not yet sent
        self._asking: set[asyncio.Task[None]] = set()  # held: the loop keeps weak refs

    async def __call__(self) -> int:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            task = asyncio.get_running_loop().create_task(self._ask(self._next))
            self._asking.add(task)
            task.add_done_callback(self._asking.discard)
        # Shielded: one caller cancelled must not cancel the answer the others wait for.
        return await asyncio.shield(self._next)

    async def _ask(self, answer: asyncio.Future[int]) -> None:
        # This runs on a later loop turn than every call that joined ``answer``: from here
        # on, a new call needs a new request.
        self._next = None
        try:
            try:
                msg = await self._nc.request(self._subject, b"", timeout=TIMEOUT)
            except NoRespondersError:
                raise ServiceUnavailableError from None
            info = _decode(msg.data)
            if info.error is not None:
                raise APIError.from_error(info.error)
            answer.set_result(info.state.last_seq if info.state else 0)
        except Exception as e:  # handed to every waiting caller
            if not answer.done():
                answer.set_exception(e)
        finally:
            if not answer.done():  # cancelled (shutdown)
                answer.cancel()
