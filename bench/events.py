"""(b) Event latency: API write -> controller reconcile start, next to raw JetStream.

``python -m bench.events [--rates 200,1000] [--seconds 10]``

Runs nats-server, the API gateway and the bridge as processes, and a probe process with a
``shared.runtime.Controller`` on Cluster. A separate load process POSTs Clusters at a fixed
rate, each carrying its send time (``perf_counter``) in the ``bench/sent`` annotation; the
probe's reconciler records the time its reconcile starts. At each rate the same run also
measures raw JetStream publish -> consume between two processes, the ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from bench.common import (
    MESSAGES_HEADERS,
    Messages,
    Stack,
    machine_line,
    messages_rows,
    ms,
    probe_and_load,
    table,
)
from shared.models import API_VERSION

TARGET = "p99 < 10 ms at 1,000 writes/s"

# An API step: (rate, load summary, CPU s by process, NATS messages by client)
Step = tuple[int, dict, dict[str, float], Messages]


def cluster_body(prefix: str) -> str:
    body = {
        "metadata": {"name": prefix + "-{i}", "annotations": {"bench/sent": "{ts}"}},
        "spec": {"region": "local", "provider": "simulated", "release": "mke-1-0"},
    }
    return json.dumps(body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="per rate")
    p.add_argument("--rates", default="200,1000")
    p.add_argument("--workers", type=int, default=4, help="probe controller workers")
    p.add_argument("--without-bridge", action="store_true",
                   help="leave the bridge out, to see what it costs the path (the writers' "
                        "announces still reach the probe)")
    args = p.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")]
    stack = Stack(prefix="bench")
    rows = []
    steps: list[Step] = []
    try:
        stack.start_nats()
        stack.start_api()
        if not args.without_bridge:
            stack.spawn("bridge", ["-m", "services.bridge"])
        stack.wait_http(stack.api_url + "/healthz")
        url = f"{stack.api_url}/apis/{API_VERSION}/namespaces/bench/clusters"
        for rate in rates:
            count = int(rate * args.seconds)
            load, probe = probe_and_load(
                stack, f"raw{rate}",
                ["js", "--subject", f"raw.ev{rate}", "--durable", f"ev{rate}",
                 "--count", str(count), "--timeout", str(args.seconds + 30)],
                ["js", f"raw.ev{rate}", "--nats-url", stack.nats_url, "--rate", str(rate),
                 "--count", str(count), "--duration", str(args.seconds + 5), "--size", "400"],
            )
            rows.append(["raw JetStream pub -> consume", f"{rate}/s", load["sent"],
                         f"{load['rate']:.0f}", "-", "-", probe["received"],
                         ms(probe["p50"]), ms(probe["p99"]), ms(probe["max"])])
            before, messages = stack.cpu(), stack.nats_messages()
            load, probe = probe_and_load(
                stack, f"api{rate}",
                ["controller", "--prefix", stack.prefix, "--count", str(count),
                 "--only", f"ev{rate}-",
                 "--workers", str(args.workers), "--timeout", str(args.seconds + 60)],
                ["http", "POST", url, "--body", cluster_body(f"ev{rate}"),
                 "--token", stack.token, "--rate", str(rate), "--count", str(count),
                 "--duration", str(args.seconds + 5)],
                timeout=args.seconds + 120,
            )
            created = load["statuses"].get("201", 0)
            spent = stack.cpu(since=before)
            spent["probe"], spent["load generator"] = probe["cpu"], load["cpu"]
            steps.append((rate, load, spent, stack.nats_messages(since=messages)))
            rows.append(["API POST -> reconcile start", f"{rate}/s", load["sent"],
                         f"{load['rate']:.0f}", ms(load["p50"]), ms(load["p99"]),
                         f"{probe['received']}/{created}", ms(probe["p50"]), ms(probe["p99"]),
                         ms(probe["max"])])
            if created != load["sent"]:
                rows.append([f"  (answers: {load['statuses']})", "", "", "", "", "", "", "", "",
                             ""])
        footprint = stack.footprint()
    finally:
        stack.stop()
    print(machine_line())
    print()
    print(table(f"Event latency ({args.seconds:.0f} s per rate; ms; target {TARGET})",
                ["path", "rate", "sent", "achieved/s", "HTTP p50", "HTTP p99", "seen",
                 "p50", "p99", "max"], rows))
    print()
    print(cpu_table(steps))
    print()
    print(messages_table(steps))
    print()
    print(table("Footprint (whole run)", ["process", "peak RSS MiB", "CPU s"],
                [[n, f"{r:.0f}", f"{c:.1f}"] for n, r, c in footprint]))
    return 0


def cpu_table(steps: list[Step]) -> str:
    """CPU ms per API write of every process in the path, and how many of the machine's
    cores the step kept busy: near the core count, latency is queueing, not the path."""
    names = list(dict.fromkeys(n for _, _, spent, _ in steps for n in spent))
    rows = []
    for rate, load, spent, _ in steps:
        writes = max(load["sent"], 1)
        busy = sum(spent.values()) / max(load["seconds"], 1e-9)
        rows.append([f"{rate}/s", *(f"{1000 * spent.get(n, 0.0) / writes:.2f}" for n in names),
                     f"{1000 * sum(spent.values()) / writes:.2f}",
                     f"{busy:.2f} of {os.cpu_count()}"])
    return table("CPU ms per API write, each process (API steps only)",
                 ["rate", *names, "total", "cores busy"], rows)


def messages_table(steps: list[Step]) -> str:
    """NATS messages per API write each client sent and received, and its process's CPU
    per message: the probe's is the price of a message to a controller that does nothing
    but start reconciles, the unit under every controller's cost (``bench.scale``)."""
    rows = [[f"{rate}/s", *row] for rate, load, spent, messages in steps
            for row in messages_rows(messages, max(load["sent"], 1), spent)]
    return table("NATS messages per API write, each client (API steps only; us: its "
                 "process's CPU per message sent or received)", ["rate", *MESSAGES_HEADERS],
                 rows)


if __name__ == "__main__":
    sys.exit(main())
