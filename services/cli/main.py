"""``ccctl`` entry point: get, apply, patch, scale, delete, describe, watch and wait, kubectl
style; login and logout (OpenID Connect, ``services.cli.login``).

Every failure is printed as one clear message (server Status with field paths, or an
unreachable server) and a non-zero exit code; never a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import yaml

from services.api.discovery import resolve
from services.cli import login, output
from services.cli.client import ApiFailure, Client
from services.cli.config import Config, config_path, load
from services.cli.errors import CliError
from shared.models import (
    ALL_KINDS,
    API_VERSION,
    GROUP,
    Resource,
    ValidationError,
    convert,
    to_dict,
)

WATCH_CHUNK = 300  # seconds per watch request; the CLI reconnects with the last version


# --- plumbing ------------------------------------------------------------------------------


class Ctx:
    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.out = out
        self.err = err
        self._config: Config | None = None
        self._client: Client | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load(self.args.config, server=self.args.server, token=self.args.token)
        return self._config

    @property
    def client(self) -> Client:
        if self._client is None:
            # A ccctl login session's ID token is renewed before requests when it expires.
            self._client = Client(self.config, timeout=self.args.request_timeout,
                                  renew=login.fresh)
        return self._client

    def namespace(self) -> str:
        return getattr(self.args, "namespace", None) or self.config.namespace

    def print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)


def kind_class(name: str) -> type[Resource]:
    cls = resolve(name)
    if cls is None:
        raise CliError(f'error: the server doesn\'t have a resource type "{name}"')
    return cls


def split_target(kind: str, names: list[str]) -> tuple[type[Resource], list[str]]:
    """``cluster c1`` or ``cluster/c1``."""
    if "/" in kind and not names:
        kind, _, name = kind.partition("/")
        return kind_class(kind), [name]
    return kind_class(kind), names


def collection_path(cls: type[Resource], namespace: str | None) -> str:
    base = f"/apis/{API_VERSION}"
    if cls.NAMESPACED and namespace:
        return f"{base}/namespaces/{namespace}/{cls.PLURAL}"
    return f"{base}/{cls.PLURAL}"


def object_path(cls: type[Resource], namespace: str | None, name: str) -> str:
    return f"{collection_path(cls, namespace if cls.NAMESPACED else None)}/{name}"


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise CliError(f"error: invalid duration {text!r} (use e.g. 30s, 5m, 1h)")
    value, unit = float(m.group(1)), m.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def scope(ctx: Ctx, cls: type[Resource]) -> str | None:
    if not cls.NAMESPACED or getattr(ctx.args, "all_namespaces", False):
        return None
    return ctx.namespace()


def list_all(ctx: Ctx, cls: type[Resource], namespace: str | None, selector: str | None):
    items: list[dict[str, Any]] = []
    token = ""
    while True:
        page = ctx.client.request(
            "GET", collection_path(cls, namespace),
            params={"labelSelector": selector or "", "limit": "500", "continue": token},
        )
        items += page.get("items", [])
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return items, (page.get("metadata") or {}).get("resourceVersion", "")


def render(ctx: Ctx, cls: type[Resource], items: list[dict[str, Any]], *, single: bool) -> None:
    fmt = ctx.args.output
    if fmt in ("yaml", "json"):
        data: Any = items[0] if single and len(items) == 1 else output.as_list(cls, items)
        ctx.print(output.as_yaml(data) if fmt == "yaml" else output.as_json(data))
    elif fmt == "name":
        for obj in items:
            ctx.print(output.ref(cls, obj["metadata"]["name"]))
    elif not items:
        where = "" if scope(ctx, cls) is None else f" in {ctx.namespace()} namespace"
        ctx.err.write(f"No resources found{where}.\n")
    else:
        ctx.print(output.table(cls, items, all_namespaces=scope(ctx, cls) is None
                               and cls.NAMESPACED, wide=fmt == "wide"))


# --- commands ------------------------------------------------------------------------------


def cmd_get(ctx: Ctx) -> int:
    if ctx.args.watch:  # kubectl's get -w: what is there, then every change
        if ctx.args.output == "name" or "," in ctx.args.kind:
            raise CliError("error: get -w takes one kind and -o wide, yaml or json")
        return cmd_watch(ctx)
    if "," in ctx.args.kind:
        return get_several(ctx, ctx.args.kind.split(","))
    cls, names = split_target(ctx.args.kind, ctx.args.names)
    ns = scope(ctx, cls)
    if names:
        items = [ctx.client.request("GET", object_path(cls, ns or ctx.namespace(), n))
                 for n in names]
        render(ctx, cls, items, single=len(names) == 1)
    else:
        items, _ = list_all(ctx, cls, ns, ctx.args.selector)
        render(ctx, cls, items, single=False)
    return 0


def get_several(ctx: Ctx, kinds: list[str]) -> int:
    """``get machines,lcmmachines``: one table per kind, as kubectl prints them (or one
    List of everything for -o yaml/json)."""
    if ctx.args.names or not all(kinds):
        raise CliError("error: with several kinds (a,b) give no names; list each kind")
    classes = [kind_class(k) for k in kinds]  # every kind known before any request
    found = [(cls, list_all(ctx, cls, scope(ctx, cls), ctx.args.selector)[0])
             for cls in classes]
    if ctx.args.output in ("yaml", "json"):
        data = output.as_list(classes[0], [obj for _, items in found for obj in items])
        ctx.print(output.as_yaml(data) if ctx.args.output == "yaml" else output.as_json(data))
        return 0
    tables = [(cls, items) for cls, items in found if items]
    for i, (cls, items) in enumerate(tables):
        if i:
            ctx.print("")
        render(ctx, cls, items, single=False)
    if not tables:
        ctx.err.write("No resources found.\n")
    return 0


MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def load_documents(path: str, stdin: TextIO) -> list[tuple[str, dict[str, Any]]]:
    """Documents of a file, of stdin (``-``), or of a folder's manifests (not recursive,
    in name order, as kubectl does)."""
    if path != "-" and Path(path).is_dir():
        files = sorted(p for p in Path(path).iterdir()
                       if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
        if not files:
            raise CliError(f"error: no manifests (*.yaml, *.yml, *.json) in {path}")
        return [doc for f in files for doc in load_documents(str(f), stdin)]
    try:
        text = stdin.read() if path == "-" else Path(path).read_text()
    except OSError as e:
        raise CliError(f"error: cannot read {path}: {e.strerror or e}") from None
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        raise CliError(f"error: {path} is not valid YAML: {e}") from None
    out = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        where = f"{path} (document {i + 1})"
        if not isinstance(doc, dict) or not doc.get("kind"):
            raise CliError(f"error: {where}: every document needs apiVersion, kind and metadata")
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out += [(where, item) for item in doc["items"] if isinstance(item, dict)]
        else:
            out.append((where, doc))
    return out


def _normal(cls: type[Resource], data: dict[str, Any]) -> dict[str, Any] | None:
    """Spec and user metadata after model defaulting, to tell 'unchanged' from 'configured'."""
    try:
        obj = to_dict(convert(cls, data))
    except ValidationError:
        return None
    md = obj.get("metadata", {})
    return {"spec": obj.get("spec"), "labels": md.get("labels", {}),
            "annotations": md.get("annotations", {})}


def dry_run(ctx: Ctx) -> tuple[str, str]:
    """The query and the words a server-side dry run adds (kubectl's ``--dry-run=server``)."""
    if getattr(ctx.args, "dry_run", "none") == "server":
        return "?dryRun=All", " (server dry run)"
    return "", ""


def apply_one(ctx: Ctx, where: str, doc: dict[str, Any]) -> str:
    cls = kind_class(str(doc["kind"]))
    doc.setdefault("apiVersion", API_VERSION)
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise CliError(f"error: {where}: metadata.name is required")
    name = meta["name"]
    ns = None
    if cls.NAMESPACED:
        ns = meta.get("namespace") or ctx.namespace()
        if ctx.args.namespace and meta.get("namespace") and meta["namespace"] != ctx.args.namespace:
            raise CliError(
                f"error: {where}: the namespace from the provided object {meta['namespace']!r} "
                f"does not match the namespace {ctx.args.namespace!r}"
            )
        meta["namespace"] = ns
    meta.pop("resourceVersion", None)
    doc.pop("status", None)
    query, said = dry_run(ctx)
    for attempt in range(3):
        try:
            current = ctx.client.request("GET", object_path(cls, ns, name))
        except ApiFailure as e:
            if e.code != 404:
                raise
            ctx.client.request("POST", collection_path(cls, ns) + query, body=doc)
            return f"{output.ref(cls, name)} created{said}"
        desired = _normal(cls, doc)
        if desired is not None and desired == _normal(cls, current):
            return f"{output.ref(cls, name)} unchanged{said}"
        body = dict(current)
        body.pop("status", None)
        body["spec"] = doc.get("spec", {})
        body_meta = dict(current["metadata"])
        for key in ("labels", "annotations"):
            if key in meta:
                body_meta[key] = meta[key]
        body["metadata"] = body_meta
        try:
            ctx.client.request("PUT", object_path(cls, ns, name) + query, body=body)
        except ApiFailure as e:
            if e.code == 409 and attempt < 2:
                continue
            raise
        return f"{output.ref(cls, name)} configured{said}"
    raise CliError(f"error: {where}: kept conflicting with concurrent writers")


def cmd_apply(ctx: Ctx) -> int:
    failures = 0
    for path in ctx.args.filename:
        for where, doc in load_documents(path, sys.stdin):
            try:
                ctx.print(apply_one(ctx, where, doc))
            except ApiFailure as e:
                failures += 1
                ctx.err.write(f"{e}\n")
    return 1 if failures else 0


def cmd_patch(ctx: Ctx) -> int:
    """A JSON merge patch (RFC 7386, ``kubectl patch --type=merge``): change a field or two
    without a manifest, e.g. ``-p '{"spec": {"maintenance": true}}'``."""
    cls, names = split_target(ctx.args.kind, ctx.args.names)
    if len(names) != 1:
        raise CliError("error: patch takes one object: KIND NAME or KIND/NAME")
    try:
        patch = yaml.safe_load(ctx.args.patch)  # JSON is YAML; YAML flow style is easier
    except yaml.YAMLError as e:
        raise CliError(f"error: --patch is not JSON or YAML: {e}") from None
    if not isinstance(patch, dict) or not patch:
        raise CliError("error: --patch must be a non-empty object, e.g. "
                       "'{\"spec\": {\"paused\": true}}'")
    if "status" in patch:
        raise CliError("error: status is written by controllers, not patched")
    query, said = dry_run(ctx)
    before = ctx.client.request("GET", object_path(cls, ctx.namespace(), names[0]))
    after = ctx.client.request("PATCH", object_path(cls, ctx.namespace(), names[0]) + query,
                               body=patch, content_type="application/merge-patch+json")

    def written(obj: dict[str, Any]) -> tuple[Any, ...]:
        md = obj.get("metadata") or {}
        return obj.get("spec"), md.get("labels"), md.get("annotations"), md.get("finalizers")

    same = written(before) == written(after)  # a dry run's answer keeps the old version
    ctx.print(f"{output.ref(cls, names[0])} {'unchanged' if same else 'patched'}{said}")
    return 0


def cmd_scale(ctx: Ctx) -> int:
    """kubectl scale: set spec.replicas through the scale subresource (a merge patch of the
    Scale). ``--current-replicas``/``--resource-version`` are preconditions, as kubectl's:
    the Scale is read, compared, and written back with its resourceVersion, so a change
    made in between is a conflict rather than overwritten."""
    cls, names = split_target(ctx.args.kind, ctx.args.names)
    if not cls.SCALE:
        scalable = ", ".join(sorted(c.PLURAL for c in ALL_KINDS if c.SCALE)) or "none"
        raise CliError(f"error: {cls.PLURAL}.{GROUP} cannot be scaled: the kind has no "
                       f"replicas (no scale subresource; kinds that scale: {scalable})")
    if not names or not all(names):
        raise CliError("error: scale takes KIND NAME... or KIND/NAME, and --replicas=COUNT")
    a = ctx.args
    if a.replicas < 0:
        raise CliError("error: The --replicas=COUNT flag is required, and COUNT must be "
                       "greater than or equal to 0")
    if a.current_replicas < -1:
        raise CliError("error: --current-replicas must be 0 or more (-1: no precondition)")
    query, said = dry_run(ctx)
    failures = 0
    for name in names:
        path = object_path(cls, ctx.namespace(), name) + "/scale"
        try:
            if a.current_replicas >= 0 or a.resource_version:
                scale = ctx.client.request("GET", path)
                _check_scale(cls, name, scale, a.current_replicas, a.resource_version)
                scale["spec"] = {"replicas": a.replicas}
                ctx.client.request("PUT", path + query, body=scale)
            else:
                ctx.client.request("PATCH", path + query, body={"spec": {"replicas": a.replicas}},
                                   content_type="application/merge-patch+json")
        except CliError as e:
            failures += 1
            ctx.err.write(f"{e}\n")
            continue
        ctx.print(f"{output.ref(cls, name)} scaled{said}")
    return 1 if failures else 0


def _check_scale(cls: type[Resource], name: str, scale: dict[str, Any], replicas: int,
                 resource_version: str) -> None:
    have = (scale.get("spec") or {}).get("replicas") or 0
    version = (scale.get("metadata") or {}).get("resourceVersion", "")
    if replicas >= 0 and have != replicas:
        raise CliError(f"error: {output.ref(cls, name)}: expected replicas to be {replicas}, "
                       f"was {have} (--current-replicas): not scaled")
    if resource_version and version != resource_version:
        raise CliError(f"error: {output.ref(cls, name)}: expected resource version to be "
                       f"{resource_version}, was {version} (--resource-version): not scaled")


def cmd_delete(ctx: Ctx) -> int:
    targets: list[tuple[type[Resource], str | None, str]] = []
    if ctx.args.filename:
        for path in ctx.args.filename:
            for _, doc in load_documents(path, sys.stdin):
                cls = kind_class(str(doc["kind"]))
                md = doc.get("metadata") or {}
                targets.append((cls, md.get("namespace") or ctx.namespace(), md.get("name", "")))
    else:
        if not ctx.args.kind:
            raise CliError("error: give KIND NAME... or -f FILE")
        cls, names = split_target(ctx.args.kind, ctx.args.names)
        if not names:
            raise CliError("error: resource name(s) required")
        targets = [(cls, ctx.namespace(), n) for n in names]
    failures = 0
    query, said = dry_run(ctx)
    for cls, ns, name in targets:
        try:
            code, _ = ctx.client.status_and_body("DELETE", object_path(cls, ns, name) + query)
        except ApiFailure as e:
            if e.code == 404 and ctx.args.ignore_not_found:
                continue
            failures += 1
            ctx.err.write(f"{e}\n")
            continue
        suffix = "deleted" if code == 200 else "deletion started (finalizers pending)"
        ctx.print(f'{cls.KIND.lower()}.{API_VERSION.split("/")[0]} "{name}" {suffix}{said}')
    return 1 if failures else 0


def cmd_describe(ctx: Ctx) -> int:
    cls, names = split_target(ctx.args.kind, ctx.args.names)
    ns = scope(ctx, cls) or ctx.namespace()
    if not names:
        names = [o["metadata"]["name"] for o in list_all(ctx, cls, ns, ctx.args.selector)[0]]
    for i, name in enumerate(names):
        obj = ctx.client.request("GET", object_path(cls, ns, name))
        events = recorded_events(ctx, object_path(cls, ns, name))
        if i:
            ctx.print()
        ctx.print(describe(cls, obj, events))
    return 0


EVENTS_SHOWN = 50


def recorded_events(ctx: Ctx, path: str) -> list[dict[str, Any]] | str | None:
    """The object's recorded events; None when the server does not serve them (an older
    gateway answers 404, one without NATS 503), a reason when fetching them failed."""
    try:
        body = ctx.client.request("GET", path + "/events", params={"limit": str(EVENTS_SHOWN)})
    except ApiFailure as e:
        if e.code in (404, 503):
            return None
        return str(e).splitlines()[0]
    items = body.get("items")
    return [e for e in items if isinstance(e, dict)] if isinstance(items, list) else None


def event_lines(events: list[dict[str, Any]]) -> list[str]:
    """kubectl's Events table: oldest first, repeats as ``2m (x3 over 10m)``. The server
    sends them newest first (its order breaks same-second ties, timestamps cannot)."""
    rows = [["TYPE", "REASON", "AGE", "FROM", "MESSAGE"]]
    for e in reversed(events):
        age = output.age(e.get("lastTimestamp"))
        count = e.get("count") or 1
        if isinstance(count, int) and count > 1:
            age += f" (x{count} over {output.age(e.get('firstTimestamp'))})"
        rows.append([str(e.get("type", "")), str(e.get("reason", "")), age,
                     str(e.get("reportingController", "")), str(e.get("message", ""))])
    return ["  " + r for r in output.aligned(rows)]


def describe(
    cls: type[Resource], obj: dict[str, Any], events: list[dict[str, Any]] | str | None = None
) -> str:
    """kubectl-style details; ``events`` as ``recorded_events`` returns them (None: an
    older server, so recent condition transitions stand in for events)."""
    md = obj.get("metadata", {})
    status = obj.get("status") or {}
    lines = [f"Name:         {md.get('name')}"]
    if cls.NAMESPACED:
        lines.append(f"Namespace:    {md.get('namespace')}")
    labels = ",".join(f"{k}={v}" for k, v in (md.get("labels") or {}).items()) or "<none>"
    created = md.get("creationTimestamp", "")
    lines += [
        f"Kind:         {cls.KIND}",
        f"API Version:  {obj.get('apiVersion', API_VERSION)}",
        f"Labels:       {labels}",
        f"UID:          {md.get('uid', '')}",
        f"Created:      {created} ({output.age(created)} ago)",
        f"Generation:   {md.get('generation', 0)} (observed {status.get('observedGeneration', 0)})",
        f"Phase:        {status.get('phase') or '<none>'}",
    ]
    if md.get("deletionTimestamp"):
        lines.append(f"Deleting:     since {md['deletionTimestamp']}; finalizers "
                     f"{', '.join(md.get('finalizers') or [])}")
    lines.append("Spec:")
    lines += ["  " + ln for ln in output.as_yaml(obj.get("spec") or {}).splitlines()]
    conditions = status.get("conditions") or []
    lines.append("Conditions:")
    if conditions:
        rows = [["TYPE", "STATUS", "REASON", "SEVERITY", "AGE", "MESSAGE"]]
        rows += [[c.get("type", ""), c.get("status", ""), c.get("reason", ""),
                  c.get("severity", ""), output.age(c.get("lastTransitionTime")),
                  c.get("message", "")] for c in conditions]
        lines += ["  " + r for r in output.aligned(rows)]
    else:
        lines.append("  <none>")
    lines += _state_items(obj)
    lines += _targets(cls, obj)
    lines.append("Events:")
    if isinstance(events, str):
        lines.append(f"  <unavailable: {events}>")
        return "\n".join(lines)
    if events is not None:
        lines += event_lines(events) if events else ["  <none>"]
        return "\n".join(lines)
    recent = sorted((c for c in conditions if c.get("lastTransitionTime")),
                    key=lambda c: c["lastTransitionTime"], reverse=True)[:10]
    if recent:
        for c in recent:
            kind = "Normal" if c.get("status") == "True" else "Warning"
            lines.append(f"  {output.age(c['lastTransitionTime']):>6}  {kind:<8} "
                         f"{c.get('reason') or c.get('type')}: {c.get('type')}={c.get('status')}"
                         + (f" {c['message']}" if c.get("message") else ""))
    else:
        lines.append("  <none>")
    return "\n".join(lines)


def _state_items(obj: dict[str, Any]) -> list[str]:
    """An LCMMachine's items in the order the agent applies them, with each one's progress."""
    items = (obj.get("spec") or {}).get("stateItems")
    if not items:
        return []
    done = (obj.get("status") or {}).get("stateItems") or {}
    rows = [["ITEM", "PHASE", "VERSION", "STATE", "ATTEMPTS", "MESSAGE"]]
    for item in items:
        st = done.get(item.get("name", "")) or {}
        rows.append([item.get("name", ""), item.get("phase", ""), item.get("version", ""),
                     st.get("state", "Pending"), str(st.get("attempts", 0)),
                     st.get("message", "")])
    return ["State items:"] + ["  " + r for r in output.aligned(rows)]


def _since(ts: str) -> str:
    return output.age(ts.split(".")[0].rstrip("Z") + "Z") if ts else "<none>"


def _targets(cls: type[Resource], obj: dict[str, Any]) -> list[str]:
    """A MachineHealthCheck's machines under remediation (reboots so far and why), or a
    GracefulRebootRequest's machines (how far each got)."""
    targets = (obj.get("status") or {}).get("targets")
    if not targets:
        return []
    if cls.KIND == "GracefulRebootRequest":
        rows = [["MACHINE", "STATE", "STARTED", "FINISHED", "MESSAGE"]]
        rows += [[t.get("machine", ""), t.get("state", "Waiting"),
                  _since(t.get("startedAt", "")), _since(t.get("finishedAt", "")),
                  t.get("message", "")] for t in targets]
        return ["Machines:"] + ["  " + r for r in output.aligned(rows)]
    rows = [["MACHINE", "STATE", "REBOOTS", "LAST", "REASON", "MESSAGE"]]
    rows += [[t.get("machine", ""), t.get("state", ""), str(t.get("attempts", 0)),
              _since(t.get("lastAttemptTime", "")),
              t.get("reason", ""), t.get("message", "")] for t in targets]
    return ["Remediation:"] + ["  " + r for r in output.aligned(rows)]


def watch_events(
    ctx: Ctx, cls: type[Resource], ns: str | None, *, selector: str | None,
    resource_version: str, deadline: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Watch forever (or until ``deadline``), resuming after each server-side timeout."""
    rv = resource_version
    while True:
        chunk = WATCH_CHUNK
        if deadline is not None:
            chunk = deadline - time.monotonic()
            if chunk <= 0:
                return
        params = {"resourceVersion": rv, "labelSelector": selector or "",
                  "timeoutSeconds": f"{max(chunk, 0.05):.2f}"}
        try:
            for ev in ctx.client.stream(collection_path(cls, ns), params, timeout=chunk + 15):
                if ev.get("type") == "ERROR":
                    if (ev.get("object") or {}).get("code") == 410:
                        rv = ""
                        break
                    raise ApiFailure(ev["object"].get("code", 500), ev["object"])
                rv = ev["object"]["metadata"].get("resourceVersion", rv)
                yield ev
        except ApiFailure as e:
            if e.code != 410:
                raise
            rv = ""  # too old: start over from the current state


def cmd_watch(ctx: Ctx) -> int:
    cls, names = split_target(ctx.args.kind, ctx.args.names)
    ns = scope(ctx, cls)
    wanted = set(names)
    fmt = ctx.args.output
    all_ns = ns is None and cls.NAMESPACED
    # Column widths so far: rows stay aligned as they stream. The EVENT column starts as
    # wide as its widest value, so MODIFIED after ADDED does not shift the columns.
    widths: list[int] = [max(map(len, ("ADDED", "MODIFIED", "DELETED")))]
    first = True
    deadline = time.monotonic() + parse_duration(ctx.args.timeout) if ctx.args.timeout else None
    for ev in watch_events(ctx, cls, ns, selector=ctx.args.selector, resource_version="",
                           deadline=deadline):
        obj = ev["object"]
        if wanted and obj["metadata"]["name"] not in wanted:
            continue
        if fmt == "json":
            ctx.print(_compact(ev))
        elif fmt == "yaml":
            ctx.print("---\n" + output.as_yaml(ev))
        else:
            header, row = output.table_rows(cls, [obj], all_namespaces=all_ns,
                                            wide=fmt == "wide")
            head, line = output.aligned([["EVENT", *header], [ev["type"], *row]], widths)
            if first:
                ctx.print(head)
                first = False
            ctx.print(line)
    return 0


def _compact(data: Any) -> str:
    import json

    return json.dumps(data, separators=(",", ":"))


def _parse_for(spec: str) -> Callable[[dict[str, Any] | None], bool]:
    if spec == "delete":
        return lambda obj: obj is None
    m = re.fullmatch(r"condition=([A-Za-z0-9_.-]+)(?:=(\w+))?", spec)
    if m:
        ctype, want = m.group(1), (m.group(2) or "True")
        want = want.capitalize() if want.lower() in ("true", "false", "unknown") else want

        def met(obj: dict[str, Any] | None) -> bool:
            c = output.condition(obj, ctype) if obj else None
            return bool(c) and c.get("status") == want

        return met
    m = re.fullmatch(r"jsonpath=\{?\.?([A-Za-z0-9_.]+)\}?=(.*)", spec)
    if m:
        path, value = m.group(1), m.group(2)
        return lambda obj: obj is not None and output.cell(output.dig(obj, path)) == value
    raise CliError(f"error: unsupported --for {spec!r}: use condition=TYPE[=STATUS], delete, "
                   "or jsonpath={.path}=VALUE")


def cmd_wait(ctx: Ctx) -> int:
    cls, names = split_target(ctx.args.kind, ctx.args.names)
    if ctx.args.all:
        if names:
            raise CliError("error: give names or --all, not both")
        ns = ctx.namespace() if cls.NAMESPACED else None
        listed = ctx.client.request("GET", collection_path(cls, ns)) or {}
        names = [item["metadata"]["name"] for item in listed.get("items", [])]
        if not names:
            raise CliError(f"error: no {cls.PLURAL} found to wait for")
    if not names:
        raise CliError("error: wait needs KIND/NAME, KIND NAME or KIND --all")
    met = _parse_for(ctx.args.for_)
    timeout = parse_duration(ctx.args.timeout)
    deadline = time.monotonic() + timeout
    ns = ctx.namespace() if cls.NAMESPACED else None
    for name in names:
        if not _wait_one(ctx, cls, ns, name, met, deadline):
            raise CliError(
                f"error: timed out after {ctx.args.timeout} waiting for {ctx.args.for_} "
                f"on {cls.PLURAL}/{name}"
            )
        verb = "deleted" if ctx.args.for_ == "delete" else "condition met"
        ctx.print(f"{output.ref(cls, name)} {verb}")
    return 0


def _wait_one(ctx, cls, ns, name, met, deadline) -> bool:
    try:
        obj: dict[str, Any] | None = ctx.client.request("GET", object_path(cls, ns, name))
    except ApiFailure as e:
        if e.code != 404:
            raise
        obj = None
    if obj is None and ctx.args.for_ != "delete":
        raise CliError(f'Error from server (NotFound): {cls.PLURAL} "{name}" not found')
    if met(obj):
        return True
    rv = obj["metadata"]["resourceVersion"] if obj else ""
    for ev in watch_events(ctx, cls, ns, selector=None, resource_version=rv, deadline=deadline):
        if ev["object"]["metadata"]["name"] != name:
            continue
        if met(None if ev["type"] == "DELETED" else ev["object"]):
            return True
    return False


def cmd_login(ctx: Ctx) -> int:
    a = ctx.args
    if not 0 <= a.listen_port <= 65535:
        raise CliError(f"error: --listen-port {a.listen_port} is not a port (0-65535)")
    if a.timeout <= 0:
        raise CliError("error: --timeout must be positive (seconds)")
    config = load(a.config, server=a.server, must_exist=False)  # login may create the file
    ctx.print(login.login(
        config, path=config_path(a.config), ca_file=a.idp_certificate_authority,
        listen_port=a.listen_port, timeout=a.timeout, browser=not a.no_browser,
        extra_scopes=a.scope, err=ctx.err,
    ))
    return 0


def cmd_logout(ctx: Ctx) -> int:
    path = config_path(ctx.args.config)
    done = login.logout(path)  # the session is removed even when the IdP cannot revoke it
    if done is None:
        ctx.print(f"Not logged in: {path} holds no ccctl login session")
        return 0
    line = f"Logged out: removed the tokens of ccctl login from {path}"
    if done.revoked_at is not None:
        line += f"; the refresh token was revoked at {done.revoked_at}"
    elif done.not_revoked is None:
        line += "; there was no refresh token to revoke"
    ctx.print(line)
    if done.not_revoked is not None:
        ctx.err.write("warning: the refresh token was not revoked, so it stays valid until it "
                      f"expires: {done.not_revoked}\n")
        ctx.err.flush()
    return 0


# --- argument parsing -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    def global_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
        # Accepted before or after the command, as kubectl does.
        d = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
        parser.add_argument("--config", default=d(None),
                            help="config file (default $CCLOUD_CONFIG or ~/.ccloud/config.yaml)")
        parser.add_argument("--server", default=d(None), help="API server URL")
        parser.add_argument("--token", default=d(None), help="bearer token")
        parser.add_argument("--request-timeout", type=float, default=d(30.0),
                            help="seconds per request")

    p = argparse.ArgumentParser(prog="ccctl", description="Container Cloud command line client")
    global_flags(p, top=True)
    flags = argparse.ArgumentParser(add_help=False)
    global_flags(flags, top=False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add = sub.add_parser

    def add_parser(name: str, **kw: Any) -> argparse.ArgumentParser:
        return _add(name, parents=[flags], **kw)

    sub.add_parser = add_parser  # type: ignore[method-assign]

    def common(sp: argparse.ArgumentParser, *, names: bool = True, kind_required: bool = True):
        sp.add_argument("kind", nargs=None if kind_required else "?",
                        help="kind: plural, singular or short name (cl, ma, lcmm, ...)")
        if names:
            sp.add_argument("names", nargs="*", help="object names")
        sp.add_argument("-n", "--namespace", help="namespace (project)")

    g = sub.add_parser("get", help="display one or many objects")
    common(g)
    g.add_argument("-A", "--all-namespaces", action="store_true")
    g.add_argument("-l", "--selector", help="label selector, e.g. env=dev,tier in (a,b)")
    g.add_argument("-o", "--output", choices=["wide", "yaml", "json", "name"], default="")
    g.add_argument("-w", "--watch", action="store_true",
                   help="after the list, stream changes (as the watch command)")
    g.add_argument("--timeout", default="", help="with -w: stop after this long")
    g.set_defaults(func=cmd_get)

    a = sub.add_parser("apply", help="create or update objects from YAML manifests")
    a.add_argument("-f", "--filename", action="append", required=True, help="file or - for stdin")
    a.add_argument("-n", "--namespace")
    a.add_argument("--dry-run", choices=["none", "server"], default="none",
                   help="server: every check the server makes, nothing stored")
    a.set_defaults(func=cmd_apply)

    d = sub.add_parser("delete", help="delete objects by name or manifest")
    common(d, kind_required=False)
    d.add_argument("-f", "--filename", action="append")
    d.add_argument("--ignore-not-found", action="store_true")
    d.add_argument("--dry-run", choices=["none", "server"], default="none",
                   help="server: every check the server makes, nothing deleted")
    d.set_defaults(func=cmd_delete)

    pa = sub.add_parser("patch", help="change fields of one object (JSON merge patch)")
    common(pa)
    pa.add_argument("-p", "--patch", required=True,
                    help='merge patch, JSON or YAML: \'{"spec": {"maintenance": true}}\'')
    pa.add_argument("--type", choices=["merge"], default="merge",
                    help="merge (RFC 7386), the only kind the API takes")
    pa.add_argument("--dry-run", choices=["none", "server"], default="none",
                    help="server: every check the server makes, nothing stored")
    pa.set_defaults(func=cmd_patch)

    sc = sub.add_parser("scale", help="set the replicas of objects that have them "
                                      "(machine pools)")
    common(sc)
    sc.add_argument("--replicas", type=int, required=True, help="the new number of replicas")
    sc.add_argument("--current-replicas", type=int, default=-1,
                    help="precondition: scale only if the current replicas are this (-1: any)")
    sc.add_argument("--resource-version", default="",
                    help="precondition: scale only if the resourceVersion is this")
    sc.add_argument("--dry-run", choices=["none", "server"], default="none",
                    help="server: every check the server makes, nothing stored")
    sc.set_defaults(func=cmd_scale)

    s = sub.add_parser("describe", help="show details, conditions and recent events")
    common(s)
    s.add_argument("-l", "--selector")
    s.set_defaults(func=cmd_describe, all_namespaces=False)

    w = sub.add_parser("watch", help="stream changes")
    common(w)
    w.add_argument("-A", "--all-namespaces", action="store_true")
    w.add_argument("-l", "--selector")
    w.add_argument("-o", "--output", choices=["wide", "yaml", "json"], default="")
    w.add_argument("--timeout", default="", help="stop after this long (default: never)")
    w.set_defaults(func=cmd_watch)

    t = sub.add_parser("wait", help="wait for a condition on objects")
    common(t)
    t.add_argument("--for", dest="for_", required=True,
                   help="condition=Ready, condition=Ready=False, delete, jsonpath={.p}=v")
    t.add_argument("--timeout", default="30s", help="e.g. 30s, 5m (default 30s)")
    t.add_argument("--all", action="store_true", help="every object of the kind in the namespace")
    t.set_defaults(func=cmd_wait)

    li = sub.add_parser("login", help="sign in with the identity provider (OIDC) in a browser")
    li.add_argument("--listen-port", type=int, default=0,
                    help="port of the 127.0.0.1 callback listener (default: one the OS picks; "
                         "pin it for an IdP that registers exact redirect URIs)")
    li.add_argument("--timeout", type=float, default=login.DEFAULT_TIMEOUT,
                    help="seconds to wait for the browser (default 300)")
    li.add_argument("--no-browser", action="store_true",
                    help="only print the URL to open, start no browser")
    li.add_argument("--idp-certificate-authority", metavar="FILE",
                    help="CA certificates to trust for the identity provider (default: the "
                         "system's); kept for refreshes")
    li.add_argument("--scope", action="append", default=[],
                    help="an extra scope to ask for (repeatable), e.g. offline_access, which "
                         "Dex needs to give refresh tokens")
    li.set_defaults(func=cmd_login)

    lo = sub.add_parser("logout", help="remove the tokens ccctl login stored")
    lo.set_defaults(func=cmd_logout)
    return p


def main(argv: list[str] | None = None, *, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    ctx = Ctx(args, out, err)
    try:
        return args.func(ctx)
    except CliError as e:
        msg = str(e)
        err.write(msg if msg.startswith(("error", "Error")) else f"error: {msg}")
        err.write("\n")
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # the last guard: a message, never a traceback
        err.write(f"error: unexpected failure: {type(e).__name__}: {e}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
