"""(d) Raw JetStream on this machine: the ceiling every other figure is measured against.

``python -m bench.jetstream [--seconds 10] [--rates 100,500,1000,2000]``

Publishes from one process and consumes in another, through a file-backed stream and a
durable pull consumer with explicit acks (how the bus uses JetStream). Prints publish and
consume throughput and the publish -> consume latency at fixed rates.
"""

from __future__ import annotations

import argparse
import sys

from bench.common import Stack, machine_line, ms, probe_and_load, run_json, table

TARGET_RATE = 1000


def flood(stack: Stack, subject: str, count: int, window: int, size: int) -> dict:
    return run_json(["-m", "bench.loadgen", "js-flood", subject, "--nats-url", stack.nats_url,
                     "--count", str(count), "--window", str(window), "--size", str(size)],
                    stack.env(), timeout=300)


def latency_rows(stack: Stack, rates: list[int], seconds: float, size: int) -> list[list]:
    rows = []
    for rate in rates:
        count = int(rate * seconds)
        load, probe = probe_and_load(
            stack, f"js{rate}",
            ["js", "--subject", f"raw.lat{rate}", "--durable", f"lat{rate}",
             "--count", str(count), "--timeout", str(seconds + 30)],
            ["js", f"raw.lat{rate}", "--nats-url", stack.nats_url, "--rate", str(rate),
             "--count", str(count), "--duration", str(seconds + 5), "--size", str(size)],
        )
        rows.append([f"{rate}/s", load["sent"], f"{load['rate']:.0f}", probe["received"],
                     ms(load["p50"]), ms(load["p99"]), ms(probe["p50"]), ms(probe["p99"]),
                     ms(probe["max"])])
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.jetstream", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="per fixed-rate step")
    p.add_argument("--rates", default="100,500,1000,2000")
    p.add_argument("--flood", type=int, default=20000, help="messages per throughput step")
    p.add_argument("--size", type=int, default=256, help="payload bytes (an event is ~400)")
    args = p.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")]
    stack = Stack(prefix="raw")
    try:
        stack.start_nats()
        # the stream must exist before the first flood: let a probe create it
        _, _ = probe_and_load(stack, "warm", ["js", "--subject", "raw.>", "--durable", "warm",
                                               "--count", "10", "--timeout", "20"],
                              ["js", "raw.warm", "--nats-url", stack.nats_url, "--rate", "100",
                               "--count", "10"])
        sync = flood(stack, "raw.flood", max(1000, args.flood // 10), 1, args.size)
        pipelined = flood(stack, "raw.flood", args.flood, 256, args.size)
        total = sync["acked"] + pipelined["acked"]
        _, drain = probe_and_load(stack, "drain",
                                  ["js-drain", "--subject", "raw.flood", "--durable", "drain",
                                   "--count", str(total), "--timeout", "120"],
                                  ["js", "raw.none", "--nats-url", stack.nats_url,
                                   "--count", "1"])
        rows = latency_rows(stack, rates, args.seconds, args.size)
        footprint = stack.footprint()
    finally:
        stack.stop()
    print(machine_line())
    print()
    print(table(f"JetStream throughput ({args.size} B payload, file storage, one server)",
                ["step", "messages", "seconds", "msg/s"],
                [["publish, wait each ack", sync["acked"], f"{sync['seconds']:.2f}",
                  f"{sync['rate']:.0f}"],
                 ["publish, 256 acks in flight", pipelined["acked"],
                  f"{pipelined['seconds']:.2f}", f"{pipelined['rate']:.0f}"],
                 ["consume (standing pull 256, ack each)", drain["received"],
                  f"{drain['seconds']:.2f}", f"{drain['rate']:.0f}"]]))
    print()
    print(table(f"JetStream publish -> consume latency at a fixed rate ({args.seconds:.0f} s "
                "per step; ms)",
                ["rate", "sent", "achieved/s", "received", "ack p50", "ack p99",
                 "e2e p50", "e2e p99", "e2e max"], rows))
    print()
    print(table("Footprint", ["process", "peak RSS MiB", "CPU s"],
                [[n, f"{r:.0f}", f"{c:.1f}"] for n, r, c in footprint]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
