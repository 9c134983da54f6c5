"""Prometheus metrics shared by every service (one process, one default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "ccloud_reconciles_total", "Reconcile passes by controller and result", ["controller", "result"]
)
RECONCILE_SECONDS = Histogram(
    "ccloud_reconcile_duration_seconds",
    "Time spent in one reconcile pass",
    ["controller"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RECONCILE_ERRORS = Counter(
    "ccloud_reconcile_errors_total", "Reconcile passes that failed", ["controller", "error"]
)
CACHED_READS = Counter(
    "ccloud_reconcile_cached_reads_total",
    "Reconciles whose first read of their object came from the informer cache (hit) or, "
    "the cache not having applied the triggering write yet, from the store (miss)",
    ["controller", "outcome"],
)
QUEUE_DEPTH = Gauge(
    "ccloud_workqueue_depth", "Keys waiting in a controller's queue", ["controller"]
)
EVENTS_IN = Counter("ccloud_events_in_total", "Bus events consumed", ["service", "kind"])
EVENTS_OUT = Counter("ccloud_events_out_total", "Bus events published", ["service", "kind"])
PULLS_RENEWED = Counter(
    "ccloud_bus_pulls_renewed_total",
    "Standing pull requests made again after the server fell silent (a reconnect, a "
    "restarted server) or ended them (a deleted consumer)", ["consumer"],
)
BRIDGE_UNANNOUNCED = Counter(
    "ccloud_bridge_unannounced_total",
    "Writes the bridge's sweep found no announced event for (their writer died between "
    "commit and announce, or announced late) and published itself", ["kind"],
)
BRIDGE_RESENDS = Counter(
    "ccloud_bridge_resends_total",
    "Bridge tails restarted from the last acknowledged event after an ack failed", ["kind"],
)
LEADER = Gauge("ccloud_leader", "1 while this replica holds the lease", ["lease"])
