"""The receiving side of a bench, run as its own process (``python -m bench.probe``).

Modes:
  js          a durable pull consumer on a raw JetStream stream, read as the bus reads
              (a standing pull request, explicit ack); latency = receive - send time
  js-drain    read ``count`` stored messages as fast as possible (consume ceiling)
  controller  a ``shared.runtime.Controller`` on Cluster whose reconciler records
              ``perf_counter()`` at reconcile start against the ``bench/sent`` annotation

It touches ``--ready`` once subscribed, and writes one JSON summary to ``--out`` when it
has seen ``--count`` items or ``--timeout`` passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import struct
import sys
import time

from bench.common import percentile

SENT_ANNOTATION = "bench/sent"
RAW_STREAM = "BENCHRAW"


def mark_ready(path: str) -> None:
    """Tell the orchestrator this probe is subscribed (a tiny file; fine on the loop)."""
    with open(path, "w"):
        pass


def on_term(event: asyncio.Event) -> None:
    """SIGTERM from the orchestrator: stop waiting for more and report what was seen."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, event.set)


def write_out(path: str, result: dict[str, object]) -> None:
    result["cpu"] = time.process_time()  # this process's own CPU s, for per-write costs
    with open(path, "w") as f:
        f.write(json.dumps(result))


def summary(latencies: list[float], expected: int, **extra: object) -> dict[str, object]:
    return {
        "received": len(latencies),
        "expected": expected,
        "p50": percentile(latencies, 50),
        "p90": percentile(latencies, 90),
        "p99": percentile(latencies, 99),
        "max": max(latencies) if latencies else float("nan"),
        **extra,
    }


async def ensure_raw_stream(js) -> None:  # noqa: ANN001 - nats JetStreamContext
    from nats.js import api
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(RAW_STREAM)
    except NotFoundError:
        await js.add_stream(api.StreamConfig(name=RAW_STREAM, subjects=["raw.>"],
                                             storage=api.StorageType.FILE))


async def raw_pull(args: argparse.Namespace, deliver: str):  # noqa: ANN201
    """A durable consumer on the raw stream, read as the bus reads its own (a standing
    pull request, ``shared.bus.pull``)."""
    import nats
    from nats.js import api

    from shared.bus.pull import StandingPull

    nc = await nats.connect(args.nats_url, name="probe")
    js = nc.jetstream()
    await ensure_raw_stream(js)
    await js.add_consumer(RAW_STREAM, api.ConsumerConfig(
        durable_name=args.durable, filter_subject=args.subject,
        ack_policy=api.AckPolicy.EXPLICIT, deliver_policy=api.DeliverPolicy(deliver),
        max_ack_pending=10_000))
    pull = StandingPull(nc, RAW_STREAM, args.durable, batch=256)
    await pull.start()
    return nc, pull


async def next_within(pull, seconds: float):  # noqa: ANN001, ANN201
    """The next message, or None after ``seconds`` (so the caller can check its limits)."""
    try:
        async with asyncio.timeout(seconds):
            return await pull.next()
    except TimeoutError:
        return None


async def js_mode(args: argparse.Namespace) -> dict[str, object]:
    nc, pull = await raw_pull(args, "new")
    mark_ready(args.ready)
    latencies: list[float] = []
    deadline = time.monotonic() + args.timeout
    stop = asyncio.Event()
    on_term(stop)
    while len(latencies) < args.count and time.monotonic() < deadline and not stop.is_set():
        msg = await next_within(pull, 1.0)
        if msg is None:
            continue
        (sent,) = struct.unpack("!d", msg.data[:8])
        latencies.append(time.perf_counter() - sent)
        await msg.ack()
    await pull.stop()
    await nc.close()
    return summary(latencies, args.count)


async def js_drain(args: argparse.Namespace) -> dict[str, object]:
    nc, pull = await raw_pull(args, "all")
    mark_ready(args.ready)
    got = 0
    start = time.perf_counter()
    deadline = time.monotonic() + args.timeout
    while got < args.count and time.monotonic() < deadline:
        msg = await next_within(pull, 1.0)
        if msg is not None:
            await msg.ack()
            got += 1
    seconds = time.perf_counter() - start
    await pull.stop()
    await nc.close()
    return {"received": got, "seconds": seconds, "rate": got / seconds}


async def controller_mode(args: argparse.Namespace) -> dict[str, object]:
    import nats

    from shared.bus import Bus
    from shared.models import Cluster
    from shared.runtime import Controller, Request, Result
    from shared.store.kv import KVStore

    nc = await nats.connect(args.nats_url, name="probe")
    bus = Bus(nc, prefix=args.prefix, service="bench-probe")
    await bus.start()
    store = KVStore(nc, bucket=f"{args.prefix}-objects")
    await store.start()
    latencies: dict[str, float] = {}
    reconciles = 0
    done = asyncio.Event()
    drained = asyncio.Event()
    backlog = 1 << 62  # set once the controller has started

    class Probe:
        async def reconcile(self, req: Request) -> Result | None:
            nonlocal reconciles
            started = time.perf_counter()
            reconciles += 1
            if reconciles >= backlog:
                drained.set()
            obj = await store.get(Cluster, req.name, req.namespace)
            sent = obj.metadata.annotations.get(SENT_ANNOTATION)
            if sent and req.name.startswith(args.only) and req.name not in latencies:
                latencies[req.name] = started - float(sent)
                if len(latencies) >= args.count:
                    done.set()
            return None

    ctrl = Controller("bench-probe", Cluster, Probe(), store, bus, region=args.region,
                      workers=args.workers, resync_period=None)
    await ctrl.start()
    # The resync on start queued every Cluster of earlier steps: reconcile them before the
    # load starts, or this step's first second measures that backlog, not the path.
    backlog = len(ctrl.queue)
    if reconciles >= backlog:
        drained.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(drained.wait(), args.timeout)
    on_term(done)
    mark_ready(args.ready)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), args.timeout)
    result = summary(list(latencies.values()), args.count, reconciles=reconciles)
    write_out(args.out, result)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ctrl.stop(), 5)
        await asyncio.wait_for(nc.close(), 5)
    return result


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.probe")
    p.add_argument("mode", choices=["js", "js-drain", "controller"])
    p.add_argument("--nats-url", required=True)
    p.add_argument("--subject", default="raw.lat")
    p.add_argument("--durable", default="probe")
    p.add_argument("--prefix", default="bench")
    p.add_argument("--region", default="local")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--only", default="",
                   help="count only objects whose name starts with this (a step's own writes: "
                        "the resync on start also reconciles earlier steps' objects)")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--ready", required=True)
    p.add_argument("--out", required=True)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    runner = {"js": js_mode, "js-drain": js_drain, "controller": controller_mode}[args.mode]
    result = asyncio.run(runner(args))
    write_out(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
