"""(c) API latency under load from a separate process.

``python -m bench.api [--seconds 10] [--steps get:500,list:100,create:100,create:500]``

Runs nats-server, the API gateway and the bridge as processes, seeds objects, then a load
process sends requests open-loop at each step's fixed rate (latency counts from the
scheduled send time). Per step it prints p50/p90/p99/max, the answers, and the gateway's
CPU time per request (read from /proc), which shows whether cost per request stays flat.
"""

from __future__ import annotations

import argparse
import json
import sys

from bench.common import Stack, cpu_seconds, machine_line, ms, run_json, table
from shared.models import API_VERSION

TARGET = "p99 < 20 ms at 500 req/s"
SEED = 200


def body(name: str) -> str:
    return json.dumps({"metadata": {"name": name, "labels": {"bench": "api"}},
                       "spec": {"region": "local", "provider": "simulated",
                                "release": "mke-1-0"}})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="per step")
    p.add_argument("--steps", default="get:100,get:500,list:100,create:100,create:500")
    args = p.parse_args(argv)
    steps = [(kind, int(rate)) for kind, rate in (s.split(":") for s in args.steps.split(","))]
    stack = Stack(prefix="bench")
    rows = []
    try:
        stack.start_nats()
        api = stack.start_api()
        stack.spawn("bridge", ["-m", "services.bridge"])
        stack.wait_http(stack.api_url + "/healthz")
        base = f"{stack.api_url}/apis/{API_VERSION}/namespaces/bench/clusters"
        seed = run_json(["-m", "bench.loadgen", "http", "POST", base, "--body", body("seed-{i}"),
                         "--token", stack.token, "--rate", "200", "--count", str(SEED)],
                        stack.env(), timeout=120)
        if seed["statuses"].get("201") != SEED:
            raise RuntimeError(f"seeding failed: {seed['statuses']}")
        for n, (kind, rate) in enumerate(steps):
            count = int(rate * args.seconds)
            if kind == "get":
                cmd = ["GET", base + "/seed-{i}", "--modulo", str(SEED)]
                label = "GET one cluster"
            elif kind == "list":
                cmd = ["GET", base + "?limit=50&labelSelector=bench%3Dapi"]
                label = "LIST 50 clusters (of more)"
            elif kind == "create":
                cmd = ["POST", base, "--body", body(f"s{n}-{{i}}")]
                label = "POST create cluster"
            else:
                raise SystemExit(f"unknown step {kind!r}: use get, list or create")
            cpu0 = cpu_seconds(api.pid)
            load = run_json(["-m", "bench.loadgen", "http", *cmd, "--token", stack.token,
                             "--rate", str(rate), "--count", str(count),
                             "--duration", str(args.seconds + 5)],
                            stack.env(), timeout=args.seconds + 120)
            cpu = cpu_seconds(api.pid) - cpu0
            answered = max(1, load["answered"])
            rows.append([label, f"{rate}/s", load["sent"], f"{load['rate']:.0f}",
                         ", ".join(f"{k}:{v}" for k, v in load["statuses"].items()),
                         ms(load["p50"]), ms(load["p90"]), ms(load["p99"]), ms(load["max"]),
                         f"{cpu / answered * 1000:.2f}"])
        footprint = stack.footprint()
    finally:
        stack.stop()
    print(machine_line())
    print()
    print(table(f"API latency ({args.seconds:.0f} s per step; ms; target {TARGET})",
                ["request", "rate", "sent", "achieved/s", "answers", "p50", "p90", "p99",
                 "max", "API CPU ms/req"], rows))
    print()
    print(table("Footprint (whole run)", ["process", "peak RSS MiB", "CPU s"],
                [[n, f"{r:.0f}", f"{c:.1f}"] for n, r, c in footprint]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
