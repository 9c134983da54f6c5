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
  and optional bearer-token auth;
- validating admission webhooks, so a test can show that a write made straight to the
  API is judged by the product's webhook. ``admissionregistration.k8s.io/v1``
  ValidatingWebhookConfigurations are served like any kind (defaulted and checked as kube
  does: https-only url, sideEffects, admissionReviewVersions, timeoutSeconds 1-30; their
  own writes are not admitted). Each create, update (PUT, PATCH; the status subresource
  only for rules naming ``<plural>/status``) and delete of another kind is sent, before
  anything is stored, to every webhook whose rules (operations, apiGroups, apiVersions,
  resources, scope) and objectSelector match, as an ``admission.k8s.io/v1``
  AdmissionReview over HTTPS verified against ``caBundle``, bounded by ``timeoutSeconds``.
  A denial is answered as kube-apiserver v1.30 does (the webhook's Status, its code raised
  to 400 at least, ``admission webhook "<name>" denied the request: <message>``); a call
  that fails (unreachable, TLS, timeout, not 200, not a v1 review, wrong uid) is a 500
  InternalError under failurePolicy Fail and lets the write through under Ignore. A
  ``clientConfig.service`` is reached at the address ``set_service`` maps it to (there is
  no cluster DNS); ``webhook_calls`` lists the webhooks consulted.

Known simplifications: namespaces need not exist; creates and main-resource updates are
not checked against a schema (tests store payloads our models reject through them); a
continued list reads the current state after the last key rather than a snapshot.
Admission: no mutating webhooks, no ValidatingAdmissionPolicy; namespaceSelector is
ignored (namespaces are not objects here); matchConditions need CEL, which the fake does
not evaluate, so a configuration carrying them is refused (422) rather than half-honoured;
matchPolicy is Exact whatever it says; only ``admission.k8s.io/v1`` reviews are sent; the
fake has no dryRun (a ``?dryRun=All`` write is stored), so reviews say ``dryRun: false``
and sideEffects is not consulted; the fake's own checks (identity, resourceVersion
conflicts, existence for updates and deletes) come before the webhooks, a subclass's
schema validation (``kube_cluster``) after them.
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
from urllib.parse import urlsplit

import aiohttp
import yaml
from aiohttp import web

Obj = dict[str, Any]

DEFAULT_HISTORY = 1000

# The new uid and the time of a request, kept on it (see ``FakeKubeApiServer._stamp``).
_STAMP: Any = (web.RequestKey("fake_kube_apiserver.stamp", tuple)
               if hasattr(web, "RequestKey") else "fake_kube_apiserver.stamp")


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
        if not self.reason:
            del body["reason"]  # omitempty, as for a webhook's denial without a reason
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


# --- validating admission webhooks ----------------------------------------------------------

WEBHOOK_CONFIGS = ResourceType(
    "admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
    "validatingwebhookconfigurations", False,
)
REVIEW_VERSION = "admission.k8s.io/v1"
_SIDE_EFFECTS = ("None", "NoneOnDryRun")
_SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist")


def _is_webhook_config(rt: ResourceType) -> bool:
    return (rt.group, rt.plural) == (WEBHOOK_CONFIGS.group, WEBHOOK_CONFIGS.plural)


def _check_webhook_config(rt: ResourceType, name: str, obj: Obj) -> None:
    """Default a ValidatingWebhookConfiguration and check it as kube-apiserver does (422
    naming the field), in place; matchConditions are refused, as the fake cannot honour
    them and a test must not pass with conditions silently unevaluated."""
    hooks = obj.get("webhooks")
    if hooks is None:
        return
    if not isinstance(hooks, list) or not all(isinstance(h, dict) for h in hooks):
        raise _bad_request("the body of the request was in an unknown format: webhooks")
    seen: set[str] = set()
    for i, hook in enumerate(hooks):
        at = f"webhooks[{i}]"

        def bad(path: str, problem: str, at: str = at) -> ApiError:
            return _invalid(rt, name, f"{at}.{path}", problem)

        hname = hook.get("name") or ""
        if not hname:
            raise bad("name", "Required value")
        if len(hname.split(".")) < 3:
            raise bad("name", f'Invalid value: "{hname}": should be a domain with at least '
                              "three segments separated by dots")
        if hname in seen:
            raise bad("name", f'Duplicate value: "{hname}"')
        seen.add(hname)
        if hook.get("matchConditions"):
            raise bad("matchConditions", "Forbidden: the fake kube-apiserver "
                      "(tests/fakes/kube_apiserver.py) does not evaluate CEL match conditions")
        if hook.get("sideEffects") not in _SIDE_EFFECTS:
            raise bad("sideEffects", "Required value: must specify one of None, NoneOnDryRun"
                      if not hook.get("sideEffects") else
                      f'Unsupported value: "{hook["sideEffects"]}": supported values: '
                      '"None", "NoneOnDryRun"')
        versions = hook.get("admissionReviewVersions") or []
        if not {"v1", "v1beta1"} & set(versions):
            raise bad("admissionReviewVersions",
                      f"Invalid value: {json.dumps(versions)}: must include at least one of "
                      "v1, v1beta1" if versions else
                      "Required value: must specify one of v1, v1beta1")
        hook.setdefault("failurePolicy", "Fail")
        if hook["failurePolicy"] not in ("Fail", "Ignore"):
            raise bad("failurePolicy", f'Unsupported value: "{hook["failurePolicy"]}": '
                                       'supported values: "Fail", "Ignore"')
        hook.setdefault("matchPolicy", "Equivalent")
        hook.setdefault("timeoutSeconds", 10)
        timeout = hook["timeoutSeconds"]
        if not isinstance(timeout, int) or not 1 <= timeout <= 30:
            raise bad("timeoutSeconds", f"Invalid value: {timeout}: the timeout value must be "
                                        "between 1 and 30 seconds")
        for sel in ("namespaceSelector", "objectSelector"):
            hook.setdefault(sel, {})
            if not isinstance(hook[sel], dict):
                raise bad(sel, "Invalid value: must be a label selector")
            for j, expr in enumerate(hook[sel].get("matchExpressions") or []):
                if not isinstance(expr, dict) or expr.get("operator") not in _SELECTOR_OPS:
                    raise bad(f"{sel}.matchExpressions[{j}].operator",
                              "Invalid value: not a valid selector requirement")
        for j, rule in enumerate(hook.get("rules") or []):
            if not isinstance(rule, dict):
                raise bad(f"rules[{j}]", "Invalid value: must be a rule")
            rule.setdefault("scope", "*")
        cc = hook.get("clientConfig") or {}
        if not isinstance(cc, dict) or not isinstance(cc.get("service", {}), dict):
            raise bad("clientConfig", "Invalid value: must be a url or a service")
        if ("url" in cc) == ("service" in cc):
            raise bad("clientConfig", "Required value: exactly one of url or service is "
                                      "required")
        if "url" in cc:
            url = urlsplit(str(cc["url"]))
            if url.scheme != "https" or not url.hostname:
                raise bad("clientConfig.url", f'Invalid value: "{cc["url"]}": \'https\' is the '
                                              "only allowed URL scheme")
        else:
            svc = cc["service"]
            for part in ("namespace", "name"):
                if not svc.get(part):
                    raise bad(f"clientConfig.service.{part}", "Required value: service "
                              f"{part} is required")
            svc.setdefault("port", 443)
        if cc.get("caBundle"):
            try:
                base64.b64decode(cc["caBundle"], validate=True)
            except ValueError:
                raise _bad_request("the body of the request was in an unknown format: "
                                   f"{at}.clientConfig.caBundle is not base64") from None


def _rule_matches(rule: Obj, rt: ResourceType, operation: str, sub: str) -> bool:
    """A webhook rule against a request, as kube's rule matcher reads it: ``*`` anywhere,
    ``<plural>`` for the main resource only, ``<plural>/status``, ``*/status``, ``*/*``."""

    def has(values: Any, value: str) -> bool:
        return isinstance(values, list) and ("*" in values or value in values)

    if not (has(rule.get("operations"), operation) and has(rule.get("apiGroups"), rt.group)
            and has(rule.get("apiVersions"), rt.version)):
        return False
    scope = rule.get("scope") or "*"
    if scope != "*" and (scope == "Namespaced") != rt.namespaced:
        return False
    for entry in rule.get("resources") or []:
        res, _, want = str(entry).partition("/")
        if res in ("*", rt.plural) and want in ("*", sub):
            return True
    return False


def _selects(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels, matchExpressions) against labels."""
    selector = selector or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


class _CallFailed(Exception):
    """A webhook could not be consulted; its failurePolicy decides."""


def _client_context(ca_bundle: str | None) -> ssl.SSLContext:
    """TLS trusting ``caBundle`` (base64 PEM), else the system roots, as kube-apiserver."""
    if not ca_bundle:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode())
    except (ValueError, ssl.SSLError) as e:
        raise _CallFailed(f"unable to load the caBundle: {e}") from None


def _denied(hook: str, result: Any) -> ApiError:
    """A webhook's denial as kube-apiserver v1.30 answers it (webhook/errors.ToStatusErr):
    its Status, the code raised to 400 at least, the message naming the webhook."""
    result = result if isinstance(result, dict) else {}
    code = result.get("code")
    code = code if isinstance(code, int) and code >= 400 else 400
    reason, message = result.get("reason") or "", result.get("message") or ""
    denied_by = f'admission webhook "{hook}" denied the request'
    if message:
        message = f"{denied_by}: {message}"
    elif reason:
        message = f"{denied_by}: {reason}"
    else:
        message = f"{denied_by} without explanation"
    details = result.get("details") if isinstance(result.get("details"), dict) else None
    return ApiError(code, reason, message, details)


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
        # (webhook name, operation) of every webhook consulted, in order.
        self.webhook_calls: list[tuple[str, str]] = []
        self._services: dict[tuple[str, str, int], tuple[str, str | None]] = {}
        self.register(group=WEBHOOK_CONFIGS.group, version=WEBHOOK_CONFIGS.version,
                      kind=WEBHOOK_CONFIGS.kind, plural=WEBHOOK_CONFIGS.plural,
                      namespaced=WEBHOOK_CONFIGS.namespaced)

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

    def set_service(
        self, namespace: str, name: str, port: int, address: str, *,
        server_name: str | None = None,
    ) -> None:
        """Route a Service's port to ``address`` ("127.0.0.1:45678"), standing in for the
        cluster DNS that kube-apiserver reaches a webhook's ``clientConfig.service`` by.
        The webhook's certificate must be valid for ``server_name``: by default the host of
        ``address``, so a certificate for 127.0.0.1 serves; kube-apiserver itself checks
        ``<name>.<namespace>.svc``, which a test may ask for here."""
        self._services[(namespace, name, port)] = (address, server_name)

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
                created = await self._admitted(
                    request, rt, "CREATE", False,
                    lambda: (None, self._plan_create(request, rt, namespace, body)),
                    lambda: self._create(request, rt, namespace, body),
                )
                return web.json_response(created, status=201)
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
        if rt.namespaced and namespace is None:
            raise _no_route()
        if method == "GET":
            return web.json_response(self._get(rt, namespace, name))
        if method == "PUT":
            body = await _json_body(request)
            return web.json_response(await self._admitted(
                request, rt, "UPDATE", sub,
                lambda: self._plan_write(request, rt, namespace, name, body, sub),
                lambda: self._replace(request, rt, namespace, name, body, sub),
            ))
        if method == "PATCH":
            return web.json_response(await self._patch(request, rt, namespace, name, sub))
        if method == "DELETE" and not sub:
            opts = await _json_body(request, optional=True) or {}
            return web.json_response(await self._admitted(
                request, rt, "DELETE", False,
                lambda: (self._get(rt, namespace, name), None),
                lambda: self._delete(rt, namespace, name, opts),
                options=opts,
            ))
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

    def _stamp(self, request: web.Request) -> tuple[str, str]:
        """The request's new uid and its time, memoized on it, so the object a webhook judged
        and the object then stored carry the same ones."""
        stamp = request.get(_STAMP)
        if stamp is None:
            stamp = request[_STAMP] = (str(uuid.uuid4()), _now())
        return stamp

    def _managed(self, request: web.Request, rt: ResourceType, sub: bool) -> list[Obj]:
        agent = request.headers.get("User-Agent", "unknown").split("/")[0] or "unknown"
        entry: Obj = {"manager": agent, "operation": "Update", "apiVersion": rt.api_version,
                      "time": self._stamp(request)[1], "fieldsType": "FieldsV1",
                      "fieldsV1": {"f:metadata": {}}}
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

    def _plan_create(
        self, request: web.Request, rt: ResourceType, namespace: str | None, body: Obj
    ) -> Obj:
        """The object a create would store, short of its resourceVersion, stored nowhere:
        what the webhooks judge. Existence is not checked (kube admits before it stores)."""
        obj = copy.deepcopy(body)
        name = self._check_identity(rt, namespace, obj, None)
        obj.pop("status", None)
        meta = obj["metadata"]
        for server_owned in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(server_owned, None)
        uid, now = self._stamp(request)
        meta.update(uid=uid, generation=1, creationTimestamp=now,
                    managedFields=self._managed(request, rt, False))
        if _is_webhook_config(rt):
            _check_webhook_config(rt, name, obj)
        return obj

    def _create(
        self, request: web.Request, rt: ResourceType, namespace: str | None, body: Obj
    ) -> Obj:
        obj = self._plan_create(request, rt, namespace, body)
        name = obj["metadata"]["name"]
        key = self._key(rt, namespace, name)
        if key in self._objects:
            raise ApiError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists',
                           _details(rt, name))
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._objects[key] = obj
        self._record(rt, namespace, "ADDED", obj, None)
        return copy.deepcopy(obj)

    def _plan_write(
        self,
        request: web.Request,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        new: Obj,
        sub: bool,
    ) -> tuple[Obj, Obj]:
        """(stored, would-be-stored) for an update of the whole object or of its status, with
        every check of the write made and nothing stored: what the webhooks judge. The
        candidate keeps the stored resourceVersion (the write assigns the next)."""
        key = self._key(rt, namespace, name)
        old = self._objects.get(key)
        if old is None:
            raise _not_found(rt, name)
        new = copy.deepcopy(new)
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
            out = new
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
            if _is_webhook_config(rt):
                _check_webhook_config(rt, name, out)
            if _spec_part(out) != _spec_part(old):
                nm["generation"] = int(om.get("generation", 1)) + 1
        out["metadata"]["managedFields"] = self._managed(request, rt, sub)
        return old, out

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
        old, out = self._plan_write(request, rt, namespace, name, new, sub)
        if _strip_rv(out) == _strip_rv(old):
            return copy.deepcopy(old)  # a no-op write keeps its resourceVersion
        out["metadata"]["resourceVersion"] = self._next_rv()
        self._objects[self._key(rt, namespace, name)] = out
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

        def plan() -> tuple[Obj | None, Obj | None]:
            patched = self._patched(rt, namespace, name, ctype, body)
            return self._plan_write(request, rt, namespace, name, patched, sub)

        def commit() -> Obj:
            patched = self._patched(rt, namespace, name, ctype, body)
            return self._write(request, rt, namespace, name, patched, sub)

        return await self._admitted(request, rt, "UPDATE", sub, plan, commit)

    def _patched(
        self, rt: ResourceType, namespace: str | None, name: str, ctype: str, body: Any
    ) -> Obj:
        """The stored object with the patch applied (the stored one is left alone)."""
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
        return patched

    # --- validating admission ----------------------------------------------------------

    async def _admitted(
        self,
        request: web.Request,
        rt: ResourceType,
        operation: str,
        sub: bool,
        plan: Callable[[], tuple[Obj | None, Obj | None]],
        commit: Callable[[], Obj],
        *,
        options: Obj | None = None,
    ) -> Obj:
        """Make a write once the validating webhooks that match it allow it.

        ``plan`` gives (stored, candidate) without storing anything; ``commit`` is the write
        itself, which makes every check again. Other writes can land while the webhooks are
        consulted: an update or delete whose object changed meanwhile is judged again on the
        new state, as kube-apiserver's retried update is, so a webhook never allows a write
        it did not see. A create is not (its commit is a 409 then, as in kube)."""
        while True:
            hooks = self._hooks_for(rt, operation, "status" if sub else "")
            if not hooks:
                return commit()
            old, new = plan()
            labelled = [o["metadata"].get("labels") or {} for o in (new, old) if o is not None]
            hooks = [h for h in hooks if any(_selects(h.get("objectSelector"), lb)
                                              for lb in labelled)]
            if not hooks:
                return commit()
            meta = (new or old or {})["metadata"]
            key = self._key(rt, meta.get("namespace"), meta["name"])
            before = self._stored_version(key)
            review = self._review_request(request, rt, operation, sub, old, new, options)
            outcomes = await asyncio.gather(*(self._consult(h, review) for h in hooks))
            for refusal in outcomes:
                if refusal is not None:
                    raise refusal
            if operation == "CREATE" or self._stored_version(key) == before:
                return commit()

    def _stored_version(self, key: tuple[str, str, str, str]) -> str | None:
        obj = self._objects.get(key)
        return None if obj is None else obj["metadata"]["resourceVersion"]

    def _hooks_for(self, rt: ResourceType, operation: str, sub: str) -> list[Obj]:
        """The webhooks whose rules match, configurations by name, webhooks in order. The
        configurations' own writes are never sent to webhooks, as in kube."""
        if _is_webhook_config(rt):
            return []
        configs = sorted((k[3], o) for k, o in self._objects.items()
                         if k[:2] == (WEBHOOK_CONFIGS.group, WEBHOOK_CONFIGS.plural))
        return [copy.deepcopy(hook) for _, config in configs
                for hook in config.get("webhooks") or []
                if any(_rule_matches(r, rt, operation, sub) for r in hook.get("rules") or [])]

    def _review_request(
        self,
        request: web.Request,
        rt: ResourceType,
        operation: str,
        sub: bool,
        old: Obj | None,
        new: Obj | None,
        options: Obj | None,
    ) -> Obj:
        """An AdmissionReview's ``request``, but for its uid (each webhook gets its own)."""
        meta = (new or old or {})["metadata"]
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        gvr = {"group": rt.group, "version": rt.version, "resource": rt.plural}
        kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions"}.get(operation,
                                                                          "DeleteOptions")
        opts = {k: v for k, v in (options or {}).items() if k not in ("kind", "apiVersion")}
        if operation != "DELETE" and request.query.get("fieldManager"):
            opts["fieldManager"] = request.query["fieldManager"]
        out: Obj = {
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": meta["name"], "operation": operation, "userInfo": self._user(request),
            "object": copy.deepcopy(new), "oldObject": copy.deepcopy(old),
            # The fake does not implement dryRun (a ?dryRun=All write is stored), so it
            # never sends a dry-run review.
            "dryRun": False,
            "options": {"kind": kind, "apiVersion": "meta.k8s.io/v1"} | opts,
        }
        if sub:
            out["subResource"] = out["requestSubResource"] = "status"
        if rt.namespaced:
            out["namespace"] = meta.get("namespace")
        return out

    def _user(self, request: web.Request) -> Obj:
        """Who the request came as: its client certificate's CN and Os, else a service
        account for a bearer token, else anonymous."""
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        if peer:
            rdns = [kv for rdn in peer.get("subject", ()) for kv in rdn]
            cn = next((v for k, v in rdns if k == "commonName"), "")
            if cn:
                return {"username": cn, "groups": [v for k, v in rdns
                                                   if k == "organizationName"]
                        + ["system:authenticated"]}
        if request.headers.get("Authorization", "").startswith("Bearer "):
            return {"username": "system:serviceaccount:fake:token",
                    "groups": ["system:serviceaccounts", "system:serviceaccounts:fake",
                               "system:authenticated"]}
        return {"username": "system:anonymous", "groups": ["system:unauthenticated"]}

    async def _consult(self, hook: Obj, review: Obj) -> ApiError | None:
        """One webhook's verdict: None to go on, else the error the client gets."""
        name = hook["name"]
        self.webhook_calls.append((name, review["operation"]))
        try:
            response = await self._call(hook, review)
        except _CallFailed as e:
            if hook.get("failurePolicy", "Fail") == "Ignore":
                return None
            why = f'failed calling webhook "{name}": {e}'
            return ApiError(500, "InternalError", f"Internal error occurred: {why}",
                            {"causes": [{"message": why}]})
        if response.get("allowed"):
            return None
        return _denied(name, response.get("status"))

    async def _call(self, hook: Obj, review: Obj) -> Obj:
        """POST the review to the webhook over verified HTTPS; its checked ``response``."""
        versions = hook.get("admissionReviewVersions") or []
        if "v1" not in versions:
            raise _CallFailed(f"the fake kube-apiserver speaks {REVIEW_VERSION} only, the "
                              f"webhook accepts {versions}")
        timeout = int(hook.get("timeoutSeconds") or 10)
        url, server_name = self._resolve(hook.get("clientConfig") or {})
        url += ("&" if "?" in url else "?") + f"timeout={timeout}s"
        if urlsplit(url).scheme != "https":
            raise _CallFailed(f'Post "{url}": \'https\' is the only allowed URL scheme')
        ctx = _client_context((hook.get("clientConfig") or {}).get("caBundle"))
        uid = str(uuid.uuid4())
        body = {"apiVersion": REVIEW_VERSION, "kind": "AdmissionReview",
                "request": {"uid": uid} | review}
        try:
            async with asyncio.timeout(timeout), aiohttp.ClientSession() as session:
                async with session.post(url, json=body, ssl=ctx,
                                        server_hostname=server_name) as resp:
                    status, raw = resp.status, await resp.read()
        except TimeoutError:
            raise _CallFailed(f'failed to call webhook: Post "{url}": context deadline '
                              "exceeded") from None
        except (aiohttp.ClientError, OSError) as e:
            raise _CallFailed(f'failed to call webhook: Post "{url}": {e}') from None
        if status != 200:
            text = raw.decode(errors="replace").strip()[:200]
            raise _CallFailed(f'failed to call webhook: an error on the server ("{text}") has '
                              f"prevented the request from succeeding (status {status})")
        try:
            reply = json.loads(raw)
        except ValueError as e:
            raise _CallFailed(f"received invalid webhook response: {e}") from None
        got = (reply.get("apiVersion"), reply.get("kind")) if isinstance(reply, dict) else None
        if got != (REVIEW_VERSION, "AdmissionReview"):
            raise _CallFailed("received invalid webhook response: expected webhook response "
                              f"of {REVIEW_VERSION}, Kind=AdmissionReview, got {got}")
        response = reply.get("response")
        if not isinstance(response, dict):
            raise _CallFailed("received invalid webhook response: webhook response was absent")
        if response.get("uid") != uid:
            raise _CallFailed("received invalid webhook response: expected "
                              f'response.uid="{uid}", got "{response.get("uid")}"')
        if not isinstance(response.get("allowed", False), bool):
            raise _CallFailed("received invalid webhook response: response.allowed is not a "
                              "boolean")
        return response

    def _resolve(self, client_config: Obj) -> tuple[str, str | None]:
        """The webhook's URL and the name its certificate must carry (None: the URL host)."""
        if "url" in client_config:
            return str(client_config["url"]), None
        svc = client_config.get("service") or {}
        ns, name, port = svc.get("namespace"), svc.get("name"), svc.get("port") or 443
        path = svc.get("path") or ""
        target = self._services.get((ns, name, port))
        if target is None:
            raise _CallFailed(f'failed to call webhook: Post "https://{name}.{ns}.svc:{port}'
                              f'{path}": service "{name}" in namespace "{ns}", port {port} is '
                              "not reachable (FakeKubeApiServer.set_service maps it)")
        address, server_name = target
        return f"https://{address}{path}", server_name

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
