"""Rendering objects: tables (with kind-specific columns), YAML, JSON and names."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
import yaml

from shared.models import GROUP, MACHINE_LABEL, POOL_LABEL, Resource, ValidationError, convert


def items_done(obj: dict[str, Any]) -> str:
    """An LCMMachine's state items done of those its spec holds."""
    total = len(dig(obj, "spec.stateItems") or [])
    states = (dig(obj, "status.stateItems") or {}).values()
    return f"{sum(1 for s in states if s.get('state') == 'Done')}/{total}"


def consumer(obj: dict[str, Any]) -> str:
    """The Machine that claimed a BareMetalHost: by name where the claim labelled the host,
    else its uid."""
    uid = dig(obj, "spec.consumer")
    return cell(uid and ((dig(obj, "metadata.labels") or {}).get(MACHINE_LABEL) or uid))


def ratio(done: str, total: str) -> Callable[[dict[str, Any]], str]:
    """``done/total`` from two status fields, ``total`` a count or a list (nothing before
    the first count is written)."""

    def render(obj: dict[str, Any]) -> str:
        of = dig(obj, total)
        of = len(of) if isinstance(of, list) else of
        return f"{dig(obj, done) or 0}/{of}" if of else "<none>"

    return render


def remediating(obj: dict[str, Any]) -> str:
    """How many machines a MachineHealthCheck remediates (or gave up on)."""
    return str(len(dig(obj, "status.targets") or []))


def rebooting_now(obj: dict[str, Any]) -> str:
    """The machines a GracefulRebootRequest has in flight, with their step."""
    busy = [f"{t.get('machine')}:{str(t.get('state', '')).lower()}"
            for t in dig(obj, "status.targets") or []
            if t.get("state", "Waiting") not in ("Waiting", "Done", "Skipped")]
    return ",".join(busy) or "<none>"


def pool_of(obj: dict[str, Any]) -> str:
    """The MachinePool a Machine belongs to ("<none>" if none)."""
    return (dig(obj, "metadata.labels") or {}).get(POOL_LABEL) or "<none>"


def pool_ready(obj: dict[str, Any]) -> str:
    """A MachinePool's Ready machines of those it wants (spec.replicas left out is 1)."""
    wanted = dig(obj, "spec.replicas")
    return f"{dig(obj, 'status.readyReplicas') or 0}/{1 if wanted is None else wanted}"


# Extra columns per kind: header -> dotted path into the object, or a function of it.
Column = tuple[str, str | Callable[[dict[str, Any]], str]]
COLUMNS: dict[str, list[Column]] = {
    "Cluster": [("REGION", "spec.region"), ("PROVIDER", "spec.provider"),
                ("RELEASE", "spec.release")],
    "Machine": [("CLUSTER", "spec.cluster"), ("ROLE", "spec.role"), ("REGION", "spec.region")],
    "UpdateGroup": [("CLUSTER", "spec.cluster"), ("INDEX", "spec.index"),
                    ("CONCURRENT", "spec.concurrentUpdates")],
    "MachinePool": [("CLUSTER", "spec.cluster"), ("REPLICAS", "spec.replicas"),
                    ("READY-MACHINES", pool_ready),
                    ("UP-TO-DATE", "status.updatedReplicas")],
    "MachineHealthCheck": [("CLUSTER", "spec.cluster"), ("MAX-UNHEALTHY", "spec.maxUnhealthy"),
                           ("HEALTHY", ratio("status.currentHealthy", "status.expectedMachines")),
                           ("REMEDIATING", remediating)],
    "GracefulRebootRequest": [("REBOOTED", ratio("status.rebooted", "status.total")),
                              ("NOW", rebooting_now)],
    "LCMMachine": [("CLUSTER", "spec.cluster"), ("ROLE", "spec.role"),
                   ("RELEASE", "status.release"), ("ITEMS", items_done)],
    "LCMCluster": [("CLUSTER", "spec.cluster"), ("RELEASE", "spec.release")],
    "ClusterRelease": [("VERSION", "spec.version"), ("MKE", "spec.mkeVersion")],
    "KaaSRelease": [("VERSION", "spec.version")],
    "BareMetalHost": [("STATE", "status.provisioningState"), ("POWER", "status.powerState"),
                      ("CONSUMER", consumer)],
    "BareMetalHostCredential": [("REGION", "spec.region"), ("USERNAME", "spec.username")],
    "OpenStackCredential": [("REGION", "spec.region"), ("AUTH-URL", "spec.auth.authUrl")],
    "VsphereCredential": [("REGION", "spec.region"), ("SERVER", "spec.server")],
    "Region": [("PROVIDERS", "spec.providers")],
    "AttachedCluster": [("REGION", "spec.region"), ("VERSION", "status.kubernetesVersion"),
                        ("NODES", ratio("status.readyNodes", "status.nodes"))],
    "ArtifactMirror": [("REGION", "spec.region"), ("RELEASE", "spec.release"),
                       ("ITEMS", ratio("status.itemsDone", "status.itemsTotal"))],
}
WIDE: dict[str, list[Column]] = {
    "Cluster": [("READY-MACHINES", "status.readyMachines"), ("TOTAL", "status.totalMachines")],
    "Machine": [("NODE", "status.nodeName"), ("ADDRESSES", "status.addresses"),
                ("POOL", pool_of)],
}


def dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", name).lower()


def typed_dig(cls: type[Resource], obj: dict[str, Any], path: str) -> Any:
    """Like ``dig`` but through the model, so defaulted fields the wire omits still show
    (a Machine without ``spec.role`` is a worker)."""
    try:
        node: Any = convert(cls, obj)
    except ValidationError:
        return dig(obj, path)
    for part in path.split("."):
        node = getattr(node, _snake(part), None)
    return msgspec.to_builtins(node) if node is not None else None


def column(cls: type[Resource], obj: dict[str, Any], path: str | Callable) -> str:
    return path(obj) if callable(path) else cell(typed_dig(cls, obj, path))


def cell(value: Any) -> str:
    if value is None or value == "":
        return "<none>"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "<none>"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def age(timestamp: str | None, *, now: dt.datetime | None = None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "<unknown>"
    secs = max(0, int(((now or dt.datetime.now(dt.UTC)) - then).total_seconds()))
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in dig(obj, "status.conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def ready(obj: dict[str, Any]) -> str:
    c = condition(obj, "Ready")
    return c.get("status", "Unknown") if c else "Unknown"


def table(
    cls: type[Resource], items: Iterable[dict[str, Any]], *, all_namespaces: bool, wide: bool
) -> str:
    return "\n".join(aligned(table_rows(cls, items, all_namespaces=all_namespaces, wide=wide)))


def table_rows(
    cls: type[Resource], items: Iterable[dict[str, Any]], *, all_namespaces: bool, wide: bool
) -> list[list[str]]:
    """The header row, then one row per object."""
    cols = COLUMNS.get(cls.KIND, []) + (WIDE.get(cls.KIND, []) if wide else [])
    headers = (["NAMESPACE"] if all_namespaces else []) + ["NAME"]
    headers += [h for h, _ in cols]
    headers += ["PHASE"] * cls.HAS_PHASE + ["READY"] * cls.HAS_READY + ["AGE"]
    if wide:
        headers.append("LABELS")
    rows = [headers]
    for obj in items:
        md = obj.get("metadata", {})
        row = ([md.get("namespace", "")] if all_namespaces else []) + [md.get("name", "")]
        row += [column(cls, obj, p) for _, p in cols]
        if cls.HAS_PHASE:
            deleting = "Deleting" if md.get("deletionTimestamp") else ""
            row.append(dig(obj, "status.phase") or deleting or "<none>")
        if cls.HAS_READY:
            row.append(ready(obj))
        row.append(age(md.get("creationTimestamp")))
        if wide:
            row.append(",".join(f"{k}={v}" for k, v in (md.get("labels") or {}).items())
                       or "<none>")
        rows.append(row)
    return rows


def aligned(rows: list[list[str]], widths: list[int] | None = None) -> list[str]:
    """Rows as kubectl prints them: columns padded to their widest cell, three spaces apart.

    ``widths``, when given, holds the widths so far and grows in place, so a stream of rows
    printed one at a time stays in columns that only widen.
    """
    if widths is None:
        widths = []
    for r in rows:
        widths.extend([0] * (len(r) - len(widths)))
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    return ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip()
            for r in rows]


def ref(cls: type[Resource], name: str) -> str:
    return f"{cls.KIND.lower()}.{GROUP}/{name}"


def as_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip("\n")


def as_json(data: Any) -> str:
    return json.dumps(data, indent=2)


def as_list(cls: type[Resource], items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": items}
