"""(a) Scale: N clusters x M machines to Ready on the simulated provider and simulated agents.

``python -m bench.scale [--sizes 100x10,1000x10] [--timeout 900]``

For each size a fresh region runs as processes (nats-server, bridge, release/mirror, LCM,
the simulated provider, and ``bench.fleet --in-memory`` playing every node's agent: the real
agent loop and journal, its items remembered instead of written as files). This process
writes the Clusters and Machines straight into the store (as the API would, with a bus
announce per write), then waits until every Cluster is Ready. Printed per size: wall
time to all written / all provider-ready / all Ready, reconciles and reconciles/s per
controller (scraped from each service's /metrics), peak RSS and CPU per process, and the
NATS messages each process sent and received per machine (nats-server's ``/connz``), so
the cost per object at 1k and 10k machines sits side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import urllib.request
from dataclasses import dataclass, field

import nats
from prometheus_client.parser import text_string_to_metric_families

from bench.common import MESSAGES_HEADERS, Messages, Stack, machine_line, messages_rows, table
from shared.bus import Bus
from shared.models import (
    CLUSTER_LABEL,
    Cluster,
    ClusterSpec,
    Machine,
    MachineSpec,
    ObjectMeta,
    SimulatedMachineSpec,
)
from shared.natsserver import free_port
from shared.runtime import conditions as cond
from shared.store.kv import KVStore

NS = "scale"
RELEASE = "mke-3-7-1"
SECRET = "scale-bench-agent-secret"
SERVICES = {
    "bridge": ["-m", "services.bridge"],
    "release": ["-m", "services.release"],
    "lcm": ["-m", "services.lcm"],
    "provider": ["-m", "services.providers.simulated"],
}
TARGET = "10k machines Ready < 60 s"



@dataclass
class Run:
    clusters: int
    per_cluster: int
    per_namespace: int = 0
    written: float = 0.0
    provider_ready: float = 0.0
    ready: float = 0.0
    ready_clusters: int = 0
    reconciles: dict[str, float] = field(default_factory=dict)
    footprint: list[tuple[str, float, float]] = field(default_factory=list)
    waves: list[Wave] = field(default_factory=list)
    writes: int = 0  # store writes (KV stream messages), the bench's own creates included
    events: int = 0  # bus events kept by the stream (duplicates dropped)
    events_by: dict[str, int] = field(default_factory=dict)  # "<kind>.<verb>" -> events
    held: dict[str, float] = field(default_factory=dict)  # cores per process, all Ready, idle
    agent_calls: dict[str, float] = field(default_factory=dict)  # "METHOD route code" -> n
    # NATS messages each client connection sent and received from first write to all Ready
    messages: Messages = field(default_factory=dict)
    window_cpu: dict[str, float] = field(default_factory=dict)  # CPU s in that window

    @property
    def machines(self) -> int:
        return self.clusters * self.per_cluster


def scrape(port: int) -> tuple[dict[str, float], dict[str, float]]:
    """From a service's /metrics: reconciles per controller, and agent endpoint calls per
    "METHOD route code" (LCM only)."""
    reconciles: dict[str, float] = {}
    calls: dict[str, float] = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return reconciles, calls
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "ccloud_reconciles_total":
                name = labels["controller"]
                reconciles[name] = reconciles.get(name, 0.0) + sample.value
            elif sample.name == "ccloud_lcm_endpoint_requests_total":
                route = labels["route"].removeprefix("/lcm/v1/machines/{ns}/{name}") or "/"
                calls[f'{labels["method"]} {route} {labels["code"]}'] = sample.value
    return reconciles, calls


def namespace(i: int, per_namespace: int) -> str:
    return f"{NS}{i // per_namespace:03d}" if per_namespace else NS


async def write_all(store: KVStore, run: Run, first: int, last: int, width: int = 32) -> None:
    """Write clusters ``first`` .. ``last - 1`` and their machines."""
    sem = asyncio.Semaphore(width)
    per_cluster = run.per_cluster

    async def one_cluster(i: int) -> None:
        async with sem:
            name = f"c{i:04d}"
            ns = namespace(i, run.per_namespace)
            c = await store.create(Cluster(
                metadata=ObjectMeta(name=name, namespace=ns),
                spec=ClusterSpec(region="local", provider="simulated", release=RELEASE)))
            for j in range(per_cluster):
                role = "control-plane" if j == 0 else "worker"
                mname = f"{name}-cp{j}" if j == 0 else f"{name}-w{j}"
                await store.create(Machine(
                    metadata=ObjectMeta(name=mname, namespace=ns,
                                        labels={CLUSTER_LABEL: name},
                                        owner_references=[c.owner_ref()]),
                    spec=MachineSpec(cluster=name, role=role, region="local",
                                     simulated=SimulatedMachineSpec())))

    await asyncio.gather(*(one_cluster(i) for i in range(first, last)))


@dataclass
class Wave:
    machines: int  # in the region once this wave is Ready
    seconds: float
    cpu: dict[str, float]  # CPU s each process spent during the wave
    # Cores each process kept busy just before the wave (the region's Ready machines idle)
    idle_by: dict[str, float]

    @property
    def idle(self) -> float:
        return sum(self.idle_by.values())

    def net(self, per: int) -> float:
        """CPU ms per new machine, less what the machines already there cost meanwhile."""
        return 1000 * (sum(self.cpu.values()) - self.idle * self.seconds) / per


# Seconds of quiet measured before each wave: what a region of Ready machines costs per
# second (agents' long-polls and heartbeats, drift checks), apart from the new machines.
IDLE_WINDOW = 10.0


async def drive(stack: Stack, run: Run, timeout: float, waves: int, hold: float) -> None:
    """Write the clusters in ``waves`` equal parts, each once the previous is Ready (one
    part: all at once), and wait until every Cluster is Ready."""
    nc = await nats.connect(stack.nats_url, name="bench-scale")
    bus = Bus(nc, prefix=stack.prefix, service="bench-scale")
    await bus.start()
    # Not following: its polls read what was written since the last one, instead of
    # every write of the region reaching this process (and nats-server) as it is made.
    store = KVStore(nc, bucket=f"{stack.prefix}-objects", on_commit=bus.announce,
                    follow=False)
    await store.start()
    start = time.perf_counter()
    deadline = start + timeout
    bounds = [run.clusters * w // waves for w in range(waves + 1)]
    messages, cpu0 = stack.nats_messages(), stack.cpu()
    for first, last in zip(bounds, bounds[1:], strict=False):
        idle = await idle_cores(stack) if waves > 1 else {}
        began, cpu = time.perf_counter(), stack.cpu()
        await write_all(store, run, first, last)
        if first == 0:
            run.written = time.perf_counter() - start
        if not await wait_ready(store, run, last, start, deadline):
            break
        if waves > 1:
            run.waves.append(Wave(last * run.per_cluster, time.perf_counter() - began,
                                  stack.cpu(since=cpu), idle))
    run.messages = stack.nats_messages(since=messages)
    run.window_cpu = stack.cpu(since=cpu0)
    if hold > 0 and run.ready:
        print(f"  all Ready; holding the idle region {hold:.0f} s", file=sys.stderr, flush=True)
        run.held = await idle_cores(stack, hold)
    js = nc.jetstream()
    run.writes = (await js.stream_info(f"KV_{stack.prefix}-objects")).state.last_seq
    info = await js.stream_info(bus.stream, subjects_filter=">")
    run.events = info.state.messages
    for subj, n in (info.state.subjects or {}).items():
        kind_verb = ".".join(subj.split(".")[-2:])  # <prefix>.<region>.<kind>.<verb>
        run.events_by[kind_verb] = run.events_by.get(kind_verb, 0) + n
    await nc.close()


async def idle_cores(stack: Stack, window: float = IDLE_WINDOW) -> dict[str, float]:
    """Cores each of the region's processes keeps busy over ``window`` seconds with nothing
    written (a measurement window, not a wait for anything)."""
    before, t0 = stack.cpu(), time.perf_counter()
    await asyncio.sleep(window)
    took = time.perf_counter() - t0
    return {n: c / took for n, c in stack.cpu(since=before).items()}


async def wait_ready(store: KVStore, run: Run, written: int, start: float,
                     deadline: float) -> bool:
    """Poll until the ``written`` clusters are Ready; False at the deadline."""
    # The polls ask for what is *not* done yet: the store copies only what matches, so the
    # bench's own cost falls as the region converges instead of competing with it.
    def unready(c: Cluster) -> bool:
        return not (cond.is_true(c.status, "Ready") and c.status.total_machines == run.per_cluster
                    and c.status.ready_machines == run.per_cluster)

    while time.perf_counter() < deadline:
        if not run.provider_ready and written == run.clusters and not await store.list_all(
                Machine, where=lambda m: not cond.is_true(m.status, "ProviderReady")):
            run.provider_ready = time.perf_counter() - start
        run.ready_clusters = written - len(await store.list_all(Cluster, where=unready))
        if run.ready_clusters == written:
            if written == run.clusters:
                run.ready = time.perf_counter() - start
            return True
        elapsed = time.perf_counter() - start
        if int(elapsed) // 15 != int(elapsed - 1.5) // 15:
            print(f"  {elapsed:6.0f} s: {run.ready_clusters}/{written} clusters Ready",
                  file=sys.stderr, flush=True)
        await asyncio.sleep(1.0)
    return False


def one_size(clusters: int, per_cluster: int, per_namespace: int, timeout: float,
             poll: float, waves: int, heartbeat: tuple[str, str] = ("120", "600"),
             hold: float = 0.0, progress: float = 10.0) -> Run:
    run = Run(clusters, per_cluster, per_namespace)
    stack = Stack(prefix="scale")
    lcm_port = free_port()
    health = {name: free_port() for name in SERVICES}
    common = {
        "CCLOUD_LCM_SECRET": SECRET,
        "CCLOUD_LCM_PORT": str(lcm_port),
        "CCLOUD_LCM_HEARTBEAT_INTERVAL": heartbeat[0],
        "CCLOUD_LCM_HEARTBEAT_TIMEOUT": heartbeat[1],
        "CCLOUD_LCM_PROGRESS_INTERVAL": str(progress),
        "CCLOUD_LCM_POLL_INTERVAL": str(poll),
        "CCLOUD_MIRROR_PORT": str(free_port()),
        "CCLOUD_SIMULATED_PROVISION_SECONDS": "0.5",
        "CCLOUD_SIMULATED_POWER_SECONDS": "0.2",
        "CCLOUD_PROVIDER_POLL_INTERVAL": "1.0",
    }
    try:
        stack.start_nats()
        for name, args in SERVICES.items():
            stack.spawn(name, args, CCLOUD_HEALTH_PORT=str(health[name]), **common)
        stack.spawn("fleet", ["-m", "bench.fleet", "--endpoint", f"http://127.0.0.1:{lcm_port}",
                              "--roots", str(stack.workdir / "nodes"), "--poll-interval",
                              str(poll), "--connections", "1024", "--in-memory"], **common)
        stack.wait_http(f"http://127.0.0.1:{health['lcm']}/healthz")
        stack.wait_http(f"http://127.0.0.1:{health['provider']}/healthz")
        time.sleep(2.0)  # let the leaders take their leases before the first write
        asyncio.run(drive(stack, run, timeout, waves, hold))
        for name in SERVICES:
            reconciles, calls = scrape(health[name])
            run.reconciles.update(reconciles)
            run.agent_calls.update(calls)
        run.footprint = stack.footprint()
    finally:
        stack.stop()
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100x10,1000x10", help="CLUSTERSxMACHINES,...")
    p.add_argument("--timeout", type=float, default=900.0, help="per size")
    p.add_argument("--poll", type=float, default=5.0, help="agent poll interval, seconds")
    p.add_argument("--clusters-per-namespace", type=int, default=0,
                   help="spread clusters over namespaces (0: all in one)")
    p.add_argument("--waves", type=int, default=1,
                   help="write each size in this many equal waves, each once the previous is "
                        "Ready: CPU per machine of the last wave against the first says whether "
                        "a machine costs more in a fuller region, without saturation")
    p.add_argument("--heartbeat", default="120/600", metavar="INTERVAL/TIMEOUT",
                   help="agent heartbeat interval and timeout, seconds (the services' "
                        "defaults are 10/45)")
    p.add_argument("--progress", type=float, default=10.0, metavar="SECONDS",
                   help="least time between an agent's progress reports within a pass (the "
                        "service's default is 1; with thousands of nodes deploying at once "
                        "every pass outlasts 1 s on these 2 cores, each report a store write)")
    p.add_argument("--hold", type=float, default=0.0, metavar="SECONDS",
                   help="once all is Ready, measure the idle region this long and print what "
                        "each process costs per Ready machine (also a window to profile in)")
    args = p.parse_args(argv)
    interval, _, hb_timeout = args.heartbeat.partition("/")
    try:
        if not 0 < float(interval) <= float(hb_timeout) / 2:
            raise ValueError
    except ValueError:
        p.error(f"--heartbeat {args.heartbeat!r}: want INTERVAL/TIMEOUT, "
                "0 < INTERVAL <= TIMEOUT / 2 (as the LCM service requires)")
    if args.progress <= 0:
        p.error(f"--progress {args.progress:g}: want seconds > 0")
    runs = []
    for size in args.sizes.split(","):
        c, m = (int(x) for x in size.lower().split("x"))
        runs.append(one_size(c, m, args.clusters_per_namespace, args.timeout, args.poll,
                             max(args.waves, 1), (interval, hb_timeout), args.hold,
                             args.progress))
    print(machine_line())
    print()
    print(table(f"Scale to Ready (simulated provider and agents; target {TARGET})",
                ["clusters", "machines", "namespaces", "written s", "provider-ready s",
                 "all Ready s", "Ready", "ms per machine"],
                [[r.clusters, r.machines,
                  -(-r.clusters // r.per_namespace) if r.per_namespace else 1,
                  f"{r.written:.1f}",
                  f"{r.provider_ready:.1f}" if r.provider_ready else "-",
                  f"{r.ready:.1f}" if r.ready else "timeout",
                  f"{r.ready_clusters}/{r.clusters}",
                  f"{r.ready / r.machines * 1000:.1f}" if r.ready else "-"] for r in runs]))
    for r in runs:
        wall = r.ready or args.timeout
        print()
        print(table(f"Reconciles, {r.machines} machines ({wall:.0f} s)",
                    ["controller", "reconciles", "per s", "per machine"],
                    [[k, f"{v:.0f}", f"{v / wall:.0f}", f"{v / r.machines:.1f}"]
                     for k, v in sorted(r.reconciles.items())]))
        print()
        print(table(f"Agent calls, {r.machines} machines (LCM endpoint; routes under "
                    "/lcm/v1/machines/<ns>/<name>)",
                    ["method route code", "calls", "per s", "per machine"],
                    [[k, f"{v:.0f}", f"{v / wall:.0f}", f"{v / r.machines:.2f}"]
                     for k, v in sorted(r.agent_calls.items(), key=lambda kv: -kv[1])]))
        print()
        print(table(f"Footprint, {r.machines} machines", ["process", "peak RSS MiB", "CPU s",
                                                         "CPU ms per machine"],
                    [*([n, f"{rss:.0f}", f"{cpu:.1f}", f"{cpu / r.machines * 1000:.1f}"]
                       for n, rss, cpu in r.footprint),
                     *(["total" + label, "", f"{cpu:.1f}", f"{cpu / r.machines * 1000:.1f}"]
                       for label, cpu in _totals(r.footprint))]))
        print()
        print(table(f"Writes per machine: {r.writes / r.machines:.1f} to the store, "
                    f"{r.events / r.machines:.1f} bus events; events by kind",
                    ["kind.verb", "events", "per machine"],
                    [[k, v, f"{v / r.machines:.2f}"]
                     for k, v in sorted(r.events_by.items(), key=lambda kv: -kv[1])]))
        if r.messages:
            print()
            print(messages_table(r))
        if r.waves:
            names = list(r.waves[0].cpu)
            per = r.machines // len(r.waves)
            print()
            print(table(f"CPU ms per machine of each wave of {per} machines ('idle': cores "
                        "the region used just before the wave; 'net': total less idle x wave s)",
                        ["machines after", "wave s", *names, "total", "idle", "net"],
                        [[w.machines, f"{w.seconds:.1f}",
                          *(f"{1000 * w.cpu.get(n, 0.0) / per:.1f}" for n in names),
                          f"{1000 * sum(w.cpu.values()) / per:.1f}", f"{w.idle:.2f}",
                          f"{w.net(per):.1f}"] for w in r.waves]))
            if len(r.waves) > 1 and r.waves[-1].machines > per:
                first, last = r.waves[0], r.waves[-1]
                ready = last.machines - per
                grew = {n: last.idle_by.get(n, 0.0) - first.idle_by.get(n, 0.0) for n in names}
                rate = (last.idle - first.idle) / ready * 1e6
                print(f"an idle Ready machine costs the region ~{rate:.0f} us of CPU per second "
                      "(idle cores before the last wave less those of the empty region, per "
                      "machine then Ready); by process: "
                      + ", ".join(f"{n} {g / ready * 1e6:.0f}" for n, g in grew.items()))
        if r.held:
            print()
            print(table(f"Idle region of {r.machines} Ready machines ({args.hold:.0f} s held)",
                        ["process", "cores", "us CPU/s per machine"],
                        [[n, f"{c:.3f}", f"{c / r.machines * 1e6:.0f}"]
                         for n, c in [*r.held.items(), ("total", sum(r.held.values()))]]))
    return 0


def messages_table(r: Run) -> str:
    """NATS messages per machine by client, and what its process spent per message: each is
    work for its sender, nats-server and its receiver (a write, a delivery, an ack, a
    read), so the count times the price is most of what a machine costs."""
    return table("NATS messages per machine, first write to all Ready (by client connection; "
                 "us: its process's CPU per message sent or received)", MESSAGES_HEADERS,
                 messages_rows(r.messages, r.machines, r.window_cpu))


def _totals(footprint: list[tuple[str, float, float]]) -> list[tuple[str, float]]:
    """CPU s of all processes, and of the services alone: real agents run on their own
    nodes, so what the region's own cores must carry is the second."""
    everything = sum(cpu for _, _, cpu in footprint)
    agents = sum(cpu for name, _, cpu in footprint if name == "fleet")
    return [("", everything), (" without the simulated agents", everything - agents)]


if __name__ == "__main__":
    sys.exit(main())

