"""Open-loop load at a fixed rate, run as its own process (``python -m bench.loadgen``).

Requests are scheduled at ``start + i / rate`` whether or not earlier ones have answered,
so a slow server shows up as latency instead of a quietly lower rate (no coordinated
omission: latency counts from the scheduled time). The run is bounded by ``--count`` and
``--duration``; the summary is one JSON line on stdout.

Modes:
  http  METHOD URL  — ``{i}`` in the URL or body is the request number; ``{ts}`` in the body
                      is ``time.perf_counter()`` at send time (the event bench reads it back)
  js    SUBJECT     — raw JetStream publish, payload carries the send time
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from bench.common import percentile

Shot = Callable[[int], Awaitable[int]]


async def run_open_loop(shot: Shot, *, rate: float, count: int, duration: float,
                        drain: float = 30.0) -> dict[str, object]:
    """Fire ``shot(i)`` at ``rate``/s; each returns a status (0 = transport error)."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float) -> None:
        try:
            status = await shot(i)
        except Exception:
            status = 0
        latencies.append(time.perf_counter() - due)
        statuses[status] += 1

    start = time.perf_counter() + 0.05
    sent = 0
    while sent < count:
        now = time.perf_counter()
        if now - start > duration:
            break
        due = start + sent / rate
        if due > now:
            await asyncio.sleep(due - now)
            continue
        while sent < count and start + sent / rate <= now:
            t = asyncio.create_task(one(sent, start + sent / rate))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            sent += 1
    send_end = time.perf_counter()
    if tasks:
        await asyncio.wait(set(tasks), timeout=drain)
    lost = len(tasks)
    for t in list(tasks):
        t.cancel()
    return {
        "sent": sent,
        "answered": len(latencies),
        "unanswered": lost,
        "seconds": send_end - start,
        "rate": sent / max(send_end - start, 1e-9),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50": percentile(latencies, 50),
        "p90": percentile(latencies, 90),
        "p99": percentile(latencies, 99),
        "max": max(latencies) if latencies else float("nan"),
    }


async def http_mode(args: argparse.Namespace) -> dict[str, object]:
    from urllib.parse import urlsplit

    from bench.rawhttp import Client

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    if args.body:
        headers["Content-Type"] = args.content_type
    url = urlsplit(args.url)
    client = Client(f"{url.scheme}://{url.netloc}", connections=args.connections,
                    headers=headers)
    target = url.path + (f"?{url.query}" if url.query else "")

    async def shot(i: int) -> int:
        path = target.replace("{i}", f"{i % args.modulo if args.modulo else i:06d}")
        data = b""
        if args.body:
            data = args.body.replace("{i}", f"{i:06d}").replace(
                "{ts}", repr(time.perf_counter())).encode()
        return await client.request(args.method, path, data)

    try:
        return await run_open_loop(shot, rate=args.rate, count=args.count,
                                   duration=args.duration)
    finally:
        client.close()


async def js_mode(args: argparse.Namespace) -> dict[str, object]:
    import nats

    nc = await nats.connect(args.nats_url, name="load generator")
    js = nc.jetstream()
    pad = b"x" * max(0, args.size - 8)

    async def shot(i: int) -> int:
        await js.publish(args.subject, struct.pack("!d", time.perf_counter()) + pad)
        return 200

    try:
        return await run_open_loop(shot, rate=args.rate, count=args.count,
                                   duration=args.duration)
    finally:
        await nc.close()


async def js_flood(args: argparse.Namespace) -> dict[str, object]:
    """Publish ``count`` messages as fast as acks allow, ``window`` outstanding at a time."""
    import nats

    nc = await nats.connect(args.nats_url, name="load generator")
    js = nc.jetstream()
    payload = b"x" * args.size
    sem = asyncio.Semaphore(args.window)
    done = 0

    async def one() -> None:
        nonlocal done
        try:
            await js.publish(args.subject, payload)
            done += 1
        finally:
            sem.release()

    start = time.perf_counter()
    tasks = []
    for _ in range(args.count):
        await sem.acquire()
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks, return_exceptions=True)
    seconds = time.perf_counter() - start
    await nc.close()
    return {"sent": args.count, "acked": done, "seconds": seconds, "rate": done / seconds}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen")
    sub = p.add_subparsers(dest="mode", required=True)
    for name in ("http", "js", "js-flood"):
        s = sub.add_parser(name)
        s.add_argument("--rate", type=float, default=100.0)
        s.add_argument("--count", type=int, default=1000)
        s.add_argument("--duration", type=float, default=30.0, help="stop sending after this")
        if name == "http":
            s.add_argument("method")
            s.add_argument("url")
            s.add_argument("--body", default="")
            s.add_argument("--content-type", default="application/json")
            s.add_argument("--token", default="")
            s.add_argument("--connections", type=int, default=64)
            s.add_argument("--modulo", type=int, default=0, help="cycle {i} in the URL")
        else:
            s.add_argument("--nats-url", required=True)
            s.add_argument("subject")
            s.add_argument("--size", type=int, default=256)
            s.add_argument("--window", type=int, default=256)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    runner = {"http": http_mode, "js": js_mode, "js-flood": js_flood}[args.mode]
    result = asyncio.run(runner(args))
    result["cpu"] = time.process_time()  # this process's own CPU s, for per-write costs
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
