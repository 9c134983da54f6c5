"""Small fixes around nats-py that every owner of a subscription needs."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, BucketNotFoundError
from nats.js.kv import KeyValue

UNSUBSCRIBE_TIMEOUT = 2.0


def api_prefix(js: JetStreamContext) -> str:
    """The JetStream API subject prefix of ``js`` (``$JS.API`` unless a domain or a custom
    prefix is set); nats-py keeps it private, so the default is the fallback."""
    return getattr(js, "_prefix", "$JS.API")


async def open_bucket(js: JetStreamContext, config: api.KeyValueConfig) -> KeyValue:
    """The KV bucket ``config.bucket``, created with ``config`` if it does not exist yet
    (an existing bucket keeps its own configuration)."""
    try:
        return await js.key_value(config.bucket)
    except BucketNotFoundError:
        return await js.create_key_value(config)


async def close_subscription(sub: Any, timeout: float = UNSUBSCRIBE_TIMEOUT) -> None:
    """Unsubscribe without hanging.

    nats-py's ``unsubscribe`` waits for the pending queue to be fully processed; once the
    task that consumed it has been cancelled nobody will, and the call never returns. So
    drop what is still queued (it was never acked: JetStream redelivers it), then
    unsubscribe under a timeout.
    """
    inner = getattr(sub, "_sub", sub)  # a JetStream pull subscription wraps a core one
    queue = getattr(inner, "_pending_queue", None)
    if queue is not None:
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            queue.task_done()
        # An iterator cancelled mid-get took an item without marking it done; join() in
        # unsubscribe would wait for it forever.
        while getattr(queue, "_unfinished_tasks", 0) > 0:
            queue.task_done()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(sub.unsubscribe(), timeout)


async def _quiet(_: Exception) -> None:
    """A command reports a failed connect once, as one line; nats-py prints each attempt's."""


async def connect_briefly(url: str, *, name: str, timeout: float = 5.0) -> nats.NATS:
    """Connect for a one-off command (a backup, a pivot): a few quick attempts, then a
    ``ConnectionError`` saying why. With ``allow_reconnect=False`` nats-py never returns
    from a refused first connect (nats-io/nats.py#645), hence attempts instead."""
    try:
        return await nats.connect(url, name=name, connect_timeout=timeout,
                                  max_reconnect_attempts=3, reconnect_time_wait=0.2,
                                  error_cb=_quiet)
    except Exception as e:  # nats-py raises several unrelated types for "unreachable"
        raise ConnectionError(f"cannot reach NATS at {url}: {e or type(e).__name__}") from None


DIRECT_BATCH = 1000  # messages per direct-get request


async def read_stream(nc: nats.NATS, js: JetStreamContext, stream: str, after: int, *,
                      subject: str = "", limit: int = 0, batch: int = DIRECT_BATCH,
                      timeout: float = 5.0) -> list[Any]:
    """The messages ``stream`` holds after sequence ``after``, through its end as the server
    sees it while answering: batched direct gets (nats-server 2.11+; the stream must allow
    direct access), so a thousand messages cost a few socket reads instead of a delivery
    and a wake-up each; ``subject``: only those on it (wildcards allowed); ``limit``: at
    most that many (0: no limit), the caller reads on from the last. Messages trimmed
    since are simply absent. Each carries its ``Nats-Sequence`` and ``Nats-Subject``
    headers; ``msg.data`` is its payload."""
    request = f"{api_prefix(js)}.DIRECT.GET.{stream}"
    only = b',"next_by_subj":"%s"' % subject.encode() if subject else b""
    out: list[Any] = []
    ended: asyncio.Future[dict[str, str]] | None = None

    async def arrive(msg: Any) -> None:
        headers = msg.headers or {}
        if "Status" not in headers:
            out.append(msg)
        elif ended is not None and not ended.done():
            ended.set_result(headers)

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=arrive)
    try:
        while True:
            ended = asyncio.get_running_loop().create_future()
            if out:
                after = int(out[-1].headers["Nats-Sequence"])
            want = min(batch, limit - len(out)) if limit else batch
            if want <= 0:
                return out
            await nc.publish(request, b'{"seq":%d,"batch":%d%s}' % (after + 1, want, only),
                             reply=inbox)
            headers = await asyncio.wait_for(ended, timeout)
            status = headers["Status"]
            if status == "204":  # the end of one batch; pending: what the stream holds beyond
                if not int(headers.get("Nats-Num-Pending", "0") or 0):
                    return out
            elif status == "404":  # nothing after ``after``
                return out
            else:
                raise APIError(code=int(status), description=headers.get("Description", ""))
    finally:
        await close_subscription(sub)
