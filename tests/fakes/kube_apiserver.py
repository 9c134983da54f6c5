"""A test fake of the kube-apiserver custom-resources API, at the HTTP boundary.

No kube-apiserver can run on these machines, so the Kubernetes store backend is tested
against this server, driven by the real kubernetes-asyncio client. It reproduces the
behaviour the backend relies on, with the real server's status codes, reasons and
``Status`` bodies:

- ``/apis/<group>/<version>/[namespaces/<ns>/]<plural>[/<name>[/status]]`` for every
  registered kind (namespaced kinds can also be listed and watched across namespaces);
- a global resourceVersion counter, uid, creationTimestamp, generation bumped on changes
  outside metadata and status, a status subresource (main writes keep the stored status,
  status writes keep everything else), ``managedFields`` like the real server adds;
- resourceVersion preconditions (409 Conflict; updates without one are 422 Invalid, as
  for custom resources), 409 AlreadyExists, finalizers (DELETE marks deletionTimestamp
  and bumps generation; an update that removes the last finalizer deletes the object);
- list with labelSelector and limit/continue, merge and JSON patches (on ``/status`` they
  change the status only: spec and metadata in the body are ignored, generation stays);
- status writes (PUT or PATCH on ``/status``) checked against the kind's structural schema
  when one was registered (``register_kinds`` takes the CRD schema generated from our
  models): unknown fields are pruned, a wrong type, enum value, minimum or missing required
  field is 422 Invalid naming the field, and nothing is written;
- ``?watch=true`` streams of newline-delimited events from a bounded event history: a
  resourceVersion older than the history gets an ERROR event with a 410 Expired Status;
- discovery (``/version``, ``/api``, ``/apis``), ``/api/v1/nodes`` from a settable list,
  and optional bearer-token auth.

Known simplifications: namespaces need not exist; creates and main-resource updates are
not checked against a schema (tests store payloads our models reject through them); a
continued list reads the current state after the last key rather than a snapshot.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import json
import re
import ssl
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

Obj = dict[str, Any]

DEFAULT_HISTORY = 1000


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}"


class ApiError(Exception):
    """An error answered as a Kubernetes ``Status`` body."""

    def __init__(
        self, code: int, reason: str, message: str, details: Obj | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    def response(self) -> web.Response:
        return web.json_response(self.status(), status=self.code)


def _details(rt: ResourceType, name: str) -> Obj:
    return {"name": name, "group": rt.group, "kind": rt.plural}


def _not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found', _details(rt, name))


def _no_route() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def _conflict(rt: ResourceType, name: str, why: str | None = None) -> ApiError:
    why = why or (
        "the object has been modified; please apply your changes to the latest version "
        "and try again"
    )
    return ApiError(
        409, "Conflict", f'Operation cannot be fulfilled on {rt.qualified} "{name}": {why}',
        _details(rt, name),
    )


def _invalid(rt: ResourceType, name: str, path: str, problem: str) -> ApiError:
    details = _details(rt, name) | {
        "kind": rt.kind,
        "causes": [{"reason": "FieldValueInvalid", "message": problem, "field": path}],
    }
    return ApiError(
        422, "Invalid", f'{rt.kind}.{rt.group} "{name}" is invalid: {path}: {problem}', details
    )


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


# --- label selectors (written independently of the product's parser) -------------------

_TERM_SET = re.compile(r"^\s*([^\s!=,()]+)\s+(in|notin)\s+\(([^()]*)\)\s*$")
_TERM_CMP = re.compile(r"^\s*([^\s!=,()]+)\s*(==|=|!=)\s*([^\s!=,()]*)\s*$")
_TERM_HAS = re.compile(r"^\s*(!?)\s*([^\s!=,()]+)\s*$")


def parse_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    terms: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    preds: list[Callable[[Mapping[str, str]], bool]] = []
    for term in (t for t in terms if t.strip()):
        if m := _TERM_SET.match(term):
            key, op = m[1], m[2]
            vals = frozenset(v.strip() for v in m[3].split(",") if v.strip())
            if op == "in":
                preds.append(lambda lb, k=key, vs=vals: k in lb and lb[k] in vs)
            else:
                preds.append(lambda lb, k=key, vs=vals: k not in lb or lb[k] not in vs)
        elif m := _TERM_CMP.match(term):
            key, op, val = m[1], m[2], m[3]
            if op == "!=":
                preds.append(lambda lb, k=key, v=val: lb.get(k) != v)
            else:
                preds.append(lambda lb, k=key, v=val: k in lb and lb[k] == v)
        elif m := _TERM_HAS.match(term):
            if m[1]:
                preds.append(lambda lb, k=m[2]: k not in lb)
            else:
                preds.append(lambda lb, k=m[2]: k in lb)
        else:
            raise _bad_request(
                f"unable to parse requirement: found '{term.strip()}', expected: identifier"
            )
    return lambda labels: all(p(labels) for p in preds)


# --- patches ------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: list[Obj]) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, test, copy, move."""
    doc = copy.deepcopy(doc)

    def parent(path: str) -> tuple[Any, str]:
        parts = _pointer(path)
        if not parts:
            raise _bad_request("cannot patch the document root")
        node = doc
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        return node, parts[-1]

    def get(path: str) -> Any:
        node = doc
        for p in _pointer(path):
            node = node[int(p)] if isinstance(node, list) else node[p]
        return node

    def put(path: str, value: Any, replace: bool) -> None:
        node, key = parent(path)
        if isinstance(node, list):
            idx = len(node) if key == "-" else int(key)
            if replace:
                node[idx] = value
            else:
                node.insert(idx, value)
        else:
            if replace and key not in node:
                raise KeyError(key)
            node[key] = value

    def remove(path: str) -> Any:
        node, key = parent(path)
        return node.pop(int(key)) if isinstance(node, list) else node.pop(key)

    for op in ops:
        try:
            kind, path = op["op"], op["path"]
            if kind == "add":
                put(path, copy.deepcopy(op["value"]), replace=False)
            elif kind == "replace":
                put(path, copy.deepcopy(op["value"]), replace=True)
            elif kind == "remove":
                remove(path)
            elif kind == "test":
                if get(path) != op["value"]:
                    raise _bad_request(f"testing value {path} failed")
            elif kind == "copy":
                put(path, copy.deepcopy(get(op["from"])), replace=False)
            elif kind == "move":
                put(path, remove(op["from"]), replace=False)
            else:
                raise _bad_request(f"unknown JSON patch operation {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ApiError(422, "Invalid", f"the server rejected our request: {e!r}") from None
    return doc


# --- structural schemas (status writes) ----------------------------------------------------

_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def _json_type(value: Any) -> str:
    for name in ("boolean", "integer", "number", "string", "array", "object"):
        if _JSON_TYPES[name](value):
            return name
    return "null"


def check_schema(schema: Obj, value: Any, path: str) -> list[tuple[str, str]]:
    """Validate ``value`` against an OpenAPI v3 structural schema as the API server does,
    pruning fields the schema does not know from objects in place. Returns (field, problem)
    pairs, empty when valid."""
    if value is None:
        if schema.get("nullable"):
            return []
        want = schema.get("type", "object")
        return [(path, f'Invalid value: "null": {path} in body must be of type {want}: '
                       '"null"')]
    want = schema.get("type")
    if want and not _JSON_TYPES[want](value):
        got = _json_type(value)
        return [(path, f'Invalid value: "{got}": {path} in body must be of type {want}: '
                       f'"{got}"')]
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        return [(path, f"Unsupported value: {json.dumps(value)}: supported values: {allowed}")]
    if "minimum" in schema and isinstance(value, int | float) and value < schema["minimum"]:
        return [(path, f"Invalid value: {value}: {path} in body should be greater than or "
                       f"equal to {schema['minimum']}")]
    problems: list[tuple[str, str]] = []
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += check_schema(schema["items"], item, f"{path}[{i}]")
    if isinstance(value, dict):
        props: Obj = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key in list(value):
            if key in props:
                problems += check_schema(props[key], value[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                problems += check_schema(extra, value[key], f"{path}.{key}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields") and extra is not True:
                del value[key]  # pruned, as for a structural schema
        for key in schema.get("required") or ():
            if key not in value:
                problems.append((f"{path}.{key}", "Required value"))
    return problems


# --- watch plumbing -------------------------------------------------------------------------


@dataclass
class _Event:
    rv: int
    rt: ResourceType
    namespace: str | None
    type: str
    obj: Obj
    prev: Obj | None


@dataclass(eq=False)
class _Watcher:
    rt: ResourceType
    namespace: str | None
    match: Callable[[Mapping[str, str]], bool]
    queue: asyncio.Queue[_Event | None] = field(default_factory=asyncio.Queue)

    def translate(self, ev: _Event) -> tuple[str, Obj] | None:
        """The event this watcher sees, with label-selector transitions, or None."""
        if ev.rt != self.rt or (self.namespace and ev.namespace != self.namespace):
            return None
        now = self.match(ev.obj.get("metadata", {}).get("labels") or {})
        before = ev.prev is not None and self.match(
            ev.prev.get("metadata", {}).get("labels") or {}
        )
        if ev.type == "MODIFIED":
            if now and before:
                return "MODIFIED", ev.obj
            if now:
                return "ADDED", ev.obj
            if before:
                return "DELETED", ev.obj
            return None
        return (ev.type, ev.obj) if now else None


class FakeKubeApiServer:
    """In-memory custom-resources API server on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        token: str | None = None,
        history: int = DEFAULT_HISTORY,
        nodes: Iterable[Obj | str] = (),
        git_version: str = "v1.30.4",
    ) -> None:
        self.token = token
        self.git_version = git_version
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._status_schemas: dict[ResourceType, Obj] = {}
        self._objects: dict[tuple[str, str, str, str], Obj] = {}
        self._rv = 0
        self._events: deque[_Event] = deque(maxlen=max(1, history))
        self._compacted = 0
        self._watchers: set[_Watcher] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.nodes: list[Obj] = []
        self.set_nodes(nodes)
        self.requests: list[tuple[str, str]] = []
        self._tls = False

    # --- configuration ----------------------------------------------------------------

    def register(
        self, *, group: str, version: str, kind: str, plural: str, namespaced: bool,
        status_schema: Obj | None = None,
    ) -> ResourceType:
        """Serve a kind; ``status_schema`` (OpenAPI v3) checks its status writes."""
        rt = ResourceType(group, version, kind, plural, namespaced)
        self._types[(group, version, plural)] = rt
        if status_schema is not None:
            self._status_schemas[rt] = copy.deepcopy(status_schema)
        return rt

    def register_kinds(self, kinds: Iterable[Any]) -> None:
        """Register model classes carrying ``KIND``, ``PLURAL``, ``NAMESPACED``, with the
        status schema of the CRD generated from them (as a real cluster has installed)."""
        from shared.models.crd import openapi_schema

        for k in kinds:
            group, version = _split_api_version(k)
            status = (openapi_schema(k).get("properties") or {}).get("status")
            self.register(
                group=group, version=version, kind=k.KIND, plural=k.PLURAL,
                namespaced=k.NAMESPACED, status_schema=status,
            )

    def set_nodes(self, nodes: Iterable[Obj | str]) -> None:
        """Nodes served at ``/api/v1/nodes``: names (made Ready) or full Node objects."""
        out = []
        for n in nodes:
            if isinstance(n, str):
                n = {
                    "metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}},
                    "status": {
                        "conditions": [{"type": "Ready", "status": "True"}],
                        "addresses": [{"type": "Hostname", "address": n}],
                        "nodeInfo": {
                            "architecture": "amd64", "bootID": str(uuid.uuid4()),
                            "containerRuntimeVersion": "containerd://1.7.20",
                            "kernelVersion": "6.1.0-25-amd64",
                            "kubeProxyVersion": self.git_version,
                            "kubeletVersion": self.git_version,
                            "machineID": uuid.uuid4().hex, "operatingSystem": "linux",
                            "osImage": "Ubuntu 22.04.4 LTS", "systemUUID": str(uuid.uuid4()),
                        },
                    },
                }
            node = {"apiVersion": "v1", "kind": "Node"} | copy.deepcopy(n)
            node["metadata"].setdefault("uid", str(uuid.uuid4()))
            node["metadata"].setdefault("creationTimestamp", _now())
            out.append(node)
        self.nodes = out

    def set_history(self, size: int) -> None:
        """Keep only the last ``size`` events (older watch versions get 410 Gone)."""
        kept = list(self._events)[-size:] if size else []
        dropped = len(self._events) - len(kept)
        if dropped:
            self._compacted = list(self._events)[dropped - 1].rv
        self._events = deque(kept, maxlen=max(1, size))

    def compact(self) -> None:
        """Forget the whole event history, as an etcd compaction does."""
        self._compacted = self._rv
        self._events.clear()

    def drop_watches(self) -> None:
        """End every open watch stream, as an apiserver restart or timeout does."""
        for w in list(self._watchers):
            w.queue.put_nowait(None)

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def open_watches(self) -> int:
        return len(self._watchers)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self, *, port: int = 0, ssl_context: ssl.SSLContext | None = None) -> None:
        """Listen on 127.0.0.1; ``port`` lets a stopped server come back where it was;
        with ``ssl_context`` it serves HTTPS (client certificates are checked by it)."""
        self._tls = ssl_context is not None
        app = web.Application(middlewares=[self._middleware], client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self.drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    def kubeconfig(self, path: Path | str, *, context: str = "fake") -> Path:
        """Write a kubeconfig that points at this server (with the token, if any)."""
        user: Obj = {"token": self.token} if self.token else {}
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": user}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
        }
        path = Path(path)
        path.write_text(yaml.safe_dump(cfg))
        return path

    # --- HTTP plumbing --------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if self.token is not None:
            if request.headers.get("Authorization", "") != f"Bearer {self.token}":
                return ApiError(401, "Unauthorized", "Unauthorized").response()
        try:
            return await handler(request)
        except ApiError as e:
            return e.response()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if parts == ["version"]:
            return web.json_response(self._version())
        if parts and parts[0] == "api":
            return self._core(request, parts[1:])
        if parts and parts[0] == "apis":
            if len(parts) == 1:
                return web.json_response(self._group_list())
            if len(parts) == 2:
                return web.json_response(self._group(parts[1]))
            if len(parts) == 3:
                return web.json_response(self._resource_list(parts[1], parts[2]))
            return await self._custom(request, parts[1], parts[2], parts[3:])
        raise _no_route()

    # --- discovery and core ----------------------------------------------------------------

    def _version(self) -> Obj:
        major, minor = self.git_version.lstrip("v").split(".")[:2]
        return {
            "major": major, "minor": minor, "gitVersion": self.git_version,
            "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2024-08-14T00:00:00Z",
            "goVersion": "go1.22.5", "compiler": "gc", "platform": "linux/amd64",
        }

    def _core(self, request: web.Request, parts: list[str]) -> web.Response:
        if request.method != "GET":
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        if not parts:
            return web.json_response({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                ],
            })
        if parts == ["v1"]:
            return web.json_response({
                "kind": "APIResourceList", "groupVersion": "v1",
                "resources": [{
                    "name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node",
                    "verbs": ["get", "list"], "shortNames": ["no"],
                }],
            })
        if parts == ["v1", "nodes"]:
            return web.json_response({
                "kind": "NodeList", "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self._rv)},
                "items": copy.deepcopy(self.nodes),
            })
        if len(parts) == 3 and parts[:2] == ["v1", "nodes"]:
            for node in self.nodes:
                if node["metadata"]["name"] == parts[2]:
                    return web.json_response(node)
            raise ApiError(404, "NotFound", f'nodes "{parts[2]}" not found',
                           {"name": parts[2], "kind": "nodes"})
        raise _no_route()

    def _groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rt in self._types.values():
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return out

    def _group(self, name: str) -> Obj:
        versions = self._groups().get(name)
        if not versions:
            raise _no_route()
        vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": vs,
                "preferredVersion": vs[0]}

    def _group_list(self) -> Obj:
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [self._group(g) for g in self._groups()]}

    def _resource_list(self, group: str, version: str) -> Obj:
        resources: list[Obj] = []
        for rt in self._types.values():
            if (rt.group, rt.version) != (group, version):
                continue
            resources.append({
                "name": rt.plural, "singularName": rt.kind.lower(), "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["delete", "deletecollection", "get", "list", "patch", "create",
                          "update", "watch"],
            })
            resources.append({"name": f"{rt.plural}/status", "singularName": "",
                              "namespaced": rt.namespaced, "kind": rt.kind,
                              "verbs": ["get", "patch", "update"]})
        if not resources:
            raise _no_route()
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}", "resources": resources}

    # --- custom resources ------------------------------------------------------------------

    async def _custom(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        rt = self._types.get((group, version, rest[0]))
        if rt is None or len(rest) > 3 or (len(rest) == 3 and rest[2] != "status"):
            raise _no_route()
        if namespace is not None and not rt.namespaced:
            raise _no_route()
        name = rest[1] if len(rest) > 1 else None
        sub = len(rest) == 3
        method = request.method
        if name is None:
            if method == "GET":
                if _truthy(request.query.get("watch")):
                    return await self._watch(request, rt, namespace)
                return web.json_response(self._list(request, rt, namespace))
            if method == "POST":
                if namespace is None and rt.namespaced:
                    raise _no_route()
                body = await _json_body(request)
                return web.json_response(self._create(request, rt, namespace, body), status=201)
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        if rt.namespaced and namespace is None:
            raise _no_route()
        if method == "GET":
            return web.json_response(self._get(rt, namespace, name))
        if method == "PUT":
            body = await _json_body(request)
            return web.json_response(self._replace(request, rt, namespace, name, body, sub))
        if method == "PATCH":
            return web.json_response(await self._patch(request, rt, namespace, name, sub))
        if method == "DELETE" and not sub:
            body = await _json_body(request, optional=True)
            return web.json_response(self._delete(rt, namespace, name, body or {}))
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")

    def _key(self, rt: ResourceType, namespace: str | None, name: str) -> tuple[str, str, str, str]:
        return (rt.group, rt.plural, namespace or "", name)

    def _get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self._objects.get(self._key(rt, namespace, name))
        if obj is None:
            raise _not_found(rt, name)
        return copy.deepcopy(obj)

    def _list(self, request: web.Request, rt: ResourceType, namespace: str | None) -> Obj:
        match = parse_selector(request.query.get("labelSelector", ""))
        items = sorted(
            (k, o) for k, o in self._objects.items()
            if k[:2] == (rt.group, rt.plural) and (namespace is None or k[2] == namespace)
            and match(o["metadata"].get("labels") or {})
        )
        rv = self._rv
        token = request.query.get("continue")
        if token:
            try:
                state = json.loads(base64.b64decode(token))
                start, rv = state["start"], int(state["rv"])
            except Exception:
                raise _bad_request("continue key is not valid: invalid continue token") from None
            if rv < self._compacted:
                raise ApiError(
                    410, "Expired",
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter.",
                )
            items = [(k, o) for k, o in items if "/".join(k[2:]) >= start]
        meta: Obj = {"resourceVersion": str(rv)}
        limit = int(request.query.get("limit") or 0)
        if limit > 0 and len(items) > limit:
            nxt = "/".join(items[limit][0][2:])
            meta["continue"] = base64.b64encode(json.dumps(
                {"v": "meta.k8s.io/v1", "rv": rv, "start": nxt}
            ).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {
            "apiVersion": rt.api_version, "kind": f"{rt.kind}List", "metadata": meta,
            "items": [copy.deepcopy(o) for _, o in items],
        }

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _record(
        self, rt: ResourceType, namespace: str | None, type_: str, obj: Obj, prev: Obj | None
    ) -> None:
        ev = _Event(int(obj["metadata"]["resourceVersion"]), rt, namespace, type_,
                    copy.deepcopy(obj), prev)
        if len(self._events) == self._events.maxlen:
            self._compacted = self._events[0].rv
        self._events.append(ev)
        for w in self._watchers:
            if w.translate(ev) is not None:
                w.queue.put_nowait(ev)

    def _managed(self, request: web.Request, rt: ResourceType, sub: bool) -> list[Obj]:
        agent = request.headers.get("User-Agent", "unknown").split("/")[0] or "unknown"
        entry: Obj = {"manager": agent, "operation": "Update", "apiVersion": rt.api_version,
                      "time": _now(), "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}
        if sub:
            entry["subresource"] = "status"
        return [entry]

    def _check_identity(
        self, rt: ResourceType, namespace: str | None, body: Obj, url_name: str | None
    ) -> str:
        if not isinstance(body, dict):
            raise _bad_request("the body of the request was in an unknown format")
        if body.get("apiVersion") != rt.api_version or body.get("kind") != rt.kind:
            raise _bad_request(
                f"the API version in the data ({body.get('apiVersion')}) does not match the "
                f"expected API version ({rt.api_version})"
                if body.get("apiVersion") != rt.api_version
                else f"the kind in the data ({body.get('kind')}) does not match {rt.kind}"
            )
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            raise _invalid(rt, url_name or "", "metadata", "Required value")
        name = meta.get("name") or ""
        if not name:
            raise _invalid(rt, "", "metadata.name",
                           "Required value: name or generateName is required")
        if url_name is not None and name != url_name:
            raise _bad_request("the name of the object does not match the name on the URL")
        ns = meta.get("namespace")
        if rt.namespaced:
            if ns and ns != namespace:
                raise _bad_request("the namespace of the provided object does not match the "
                                   "namespace sent on the request")
            meta["namespace"] = namespace
        elif ns:
            meta.pop("namespace")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", name):
            raise _invalid(rt, name, "metadata.name",
                           f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must '
                           "consist of lower case alphanumeric characters, '-' or '.'")
        return name

    def _create(
        self, request: web.Request, rt: ResourceType, namespace: str | None, body: Obj
    ) -> Obj:
        name = self._check_identity(rt, namespace, body, None)
        key = self._key(rt, namespace, name)
        if key in self._objects:
            raise ApiError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists',
                           _details(rt, name))
        obj = copy.deepcopy(body)
        obj.pop("status", None)
        meta = obj["metadata"]
        for server_owned in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(server_owned, None)
        meta.update(
            uid=str(uuid.uuid4()), generation=1, creationTimestamp=_now(),
            resourceVersion=self._next_rv(), managedFields=self._managed(request, rt, False),
        )
        self._objects[key] = obj
        self._record(rt, namespace, "ADDED", obj, None)
        return copy.deepcopy(obj)

    def _write(
        self,
        request: web.Request,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        new: Obj,
        sub: bool,
    ) -> Obj:
        """Apply an update of the whole object or of its status; the shared write path."""
        key = self._key(rt, namespace, name)
        old = self._objects.get(key)
        if old is None:
            raise _not_found(rt, name)
        self._check_identity(rt, namespace, new, name)
        meta = new["metadata"]
        rv = meta.get("resourceVersion")
        if not rv:
            raise _invalid(rt, name, "metadata.resourceVersion",
                           "Invalid value: 0x0: must be specified for an update")
        if rv != old["metadata"]["resourceVersion"]:
            raise _conflict(rt, name)
        uid = meta.get("uid")
        if uid and uid != old["metadata"]["uid"]:
            raise _conflict(rt, name, f"Precondition failed: UID in precondition: {uid}, "
                            f"UID in object meta: {old['metadata']['uid']}")
        if sub:
            out = copy.deepcopy(old)
            if "status" in new:
                out["status"] = copy.deepcopy(new["status"])
                self._check_status(rt, name, out["status"])
            else:
                out.pop("status", None)
        else:
            out = copy.deepcopy(new)
            if "status" in old:
                out["status"] = copy.deepcopy(old["status"])
            else:
                out.pop("status", None)
            om, nm = old["metadata"], out["metadata"]
            for kept in ("uid", "creationTimestamp", "deletionTimestamp",
                         "deletionGracePeriodSeconds", "generation"):
                if kept in om:
                    nm[kept] = om[kept]
                else:
                    nm.pop(kept, None)
            if om.get("deletionTimestamp"):
                added = set(nm.get("finalizers") or []) - set(om.get("finalizers") or [])
                if added:
                    raise ApiError(
                        422, "Invalid",
                        f'{rt.kind}.{rt.group} "{name}" is invalid: metadata.finalizers: '
                        "Forbidden: no new finalizers can be added if the object is being "
                        "deleted", _details(rt, name),
                    )
            if _spec_part(out) != _spec_part(old):
                nm["generation"] = int(om.get("generation", 1)) + 1
        if _strip_rv(out) == _strip_rv(old):
            return copy.deepcopy(old)  # a no-op write keeps its resourceVersion
        out["metadata"]["resourceVersion"] = self._next_rv()
        out["metadata"]["managedFields"] = self._managed(request, rt, sub)
        self._objects[key] = out
        self._record(rt, namespace, "MODIFIED", out, old)
        if out["metadata"].get("deletionTimestamp") and not out["metadata"].get("finalizers"):
            self._remove(rt, namespace, name)
        return copy.deepcopy(out)

    def _check_status(self, rt: ResourceType, name: str, status: Any) -> None:
        schema = self._status_schemas.get(rt)
        if schema is None:
            return
        problems = check_schema(schema, status, "status")
        if problems:
            causes = [{"reason": "FieldValueInvalid", "message": m, "field": f}
                      for f, m in problems]
            listed = ", ".join(f"{f}: {m}" for f, m in problems)
            if len(problems) > 1:
                listed = f"[{listed}]"
            raise ApiError(422, "Invalid", f'{rt.kind}.{rt.group} "{name}" is invalid: {listed}',
                           _details(rt, name) | {"kind": rt.kind, "causes": causes})

    def _remove(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        last = self._objects.pop(self._key(rt, namespace, name))
        gone = copy.deepcopy(last)
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._record(rt, namespace, "DELETED", gone, last)
        return last

    def _replace(
        self,
        request: web.Request,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Obj,
        sub: bool,
    ) -> Obj:
        return self._write(request, rt, namespace, name, body, sub)

    async def _patch(
        self, request: web.Request, rt: ResourceType, namespace: str | None, name: str, sub: bool
    ) -> Obj:
        ctype = request.content_type
        body = await _json_body(request)
        current = self._get(rt, namespace, name)
        if ctype == "application/merge-patch+json":
            patched = merge_patch(current, body)
        elif ctype == "application/json-patch+json":
            if not isinstance(body, list):
                raise _bad_request("json patch must be a list of operations")
            patched = json_patch(current, body)
        else:
            raise ApiError(
                415, "UnsupportedMediaType",
                f'the body of the request was in an unknown format - accepted media types '
                f'include: application/json-patch+json, application/merge-patch+json '
                f'(got "{ctype}")',
            )
        if not isinstance(patched, dict):
            raise _bad_request("the patched object is not an object")
        patched.setdefault("metadata", {})
        # A patch without a resourceVersion applies to the current version.
        if not patched["metadata"].get("resourceVersion"):
            patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self._write(request, rt, namespace, name, patched, sub)

    def _delete(self, rt: ResourceType, namespace: str | None, name: str, opts: Obj) -> Obj:
        key = self._key(rt, namespace, name)
        obj = self._objects.get(key)
        if obj is None:
            raise _not_found(rt, name)
        pre = opts.get("preconditions") or {}
        meta = obj["metadata"]
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
            raise _conflict(rt, name, f"Precondition failed: ResourceVersion in precondition: "
                            f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                            f"{meta['resourceVersion']}")
        if pre.get("uid") and pre["uid"] != meta["uid"]:
            raise _conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                            f"UID in object meta: {meta['uid']}")
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return copy.deepcopy(obj)
            old = copy.deepcopy(obj)
            meta["deletionTimestamp"] = _now()
            meta["deletionGracePeriodSeconds"] = 0
            meta["generation"] = int(meta.get("generation", 1)) + 1
            meta["resourceVersion"] = self._next_rv()
            self._record(rt, namespace, "MODIFIED", obj, old)
            return copy.deepcopy(obj)
        self._remove(rt, namespace, name)
        return {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": _details(rt, name) | {"uid": meta["uid"]},
        }

    async def _watch(
        self, request: web.Request, rt: ResourceType, namespace: str | None
    ) -> web.StreamResponse:
        match = parse_selector(request.query.get("labelSelector", ""))
        raw_rv = request.query.get("resourceVersion", "")
        timeout = float(request.query.get("timeoutSeconds") or 0) or None
        try:
            since = int(raw_rv) if raw_rv else 0
        except ValueError:
            raise _bad_request(f"invalid resource version {raw_rv!r}") from None
        watcher = _Watcher(rt, namespace, match)
        backlog: list[tuple[str, Obj]] = []
        expired = False
        # No awaits between here and registering the watcher: nothing can slip between.
        if since == 0:
            for k, o in sorted(self._objects.items()):
                if k[:2] == (rt.group, rt.plural) and (namespace is None or k[2] == namespace):
                    if match(o["metadata"].get("labels") or {}):
                        backlog.append(("ADDED", copy.deepcopy(o)))
        elif since < self._compacted:
            expired = True
        else:
            for ev in self._events:
                if ev.rv > since and (seen := watcher.translate(ev)) is not None:
                    backlog.append(seen)
        if not expired:
            self._watchers.add(watcher)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            if expired:
                err = ApiError(410, "Expired",
                               f"too old resource version: {since} ({self._compacted + 1})")
                await _send(resp, "ERROR", err.status())
                return resp
            for type_, obj in backlog:
                await _send(resp, type_, obj)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout else None
            while True:
                wait = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    ev = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    break
                if ev is None:
                    break
                seen = watcher.translate(ev)
                if seen is not None:
                    await _send(resp, *seen)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watchers.discard(watcher)
        return resp


async def _send(resp: web.StreamResponse, type_: str, obj: Obj) -> None:
    await resp.write(json.dumps({"type": type_, "object": obj}).encode() + b"\n")


def _split_api_version(k: Any) -> tuple[str, str]:
    api_version = getattr(k, "API_VERSION", None)
    if api_version is None:
        from shared.models import API_VERSION as api_version
    group, version = api_version.split("/")
    return group, version


def _truthy(v: str | None) -> bool:
    return (v or "").lower() in ("true", "1")


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _strip_rv(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out["metadata"].pop("resourceVersion", None)
    out["metadata"].pop("managedFields", None)
    return out


async def _json_body(request: web.Request, *, optional: bool = False) -> Any:
    raw = await request.read()
    if not raw:
        if optional:
            return None
        raise _bad_request("the body of the request was empty")
    try:
        return json.loads(raw)
    except ValueError as e:
        raise _bad_request(f"the body of the request was in an unknown format: {e}") from None
