"""Validation of an AttachedCluster's kubeconfig and endpoint, before any client is built.

The kubeconfig is a secret written by a user, so it is checked here rather than handed to
the Kubernetes client as is:

- every message names *what* is wrong (a key path, a context name, a line and column),
  never a value from the document: PyYAML's own messages quote the offending line, so
  they are rebuilt from the problem and position only, and every message is finally
  scrubbed of the document's credential values;
- only inline credentials are accepted (token, username/password, ``*-data`` certificates):
  exec plugins, auth providers and file references would make this service run commands
  or read files of its own host on a user's behalf;
- the cluster's server must be the AttachedCluster's ``endpoint`` (when the kubeconfig has
  no server, the endpoint is used), so credentials of one cluster are never sent to
  another by a copy-paste mistake.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

INVALID_KUBECONFIG = "InvalidKubeconfig"
INVALID_ENDPOINT = "InvalidEndpoint"
ENDPOINT_MISMATCH = "EndpointMismatch"

REDACTED = "[redacted]"

_FILE_KEYS = ("certificate-authority", "client-certificate", "client-key", "tokenFile")
_DATA_KEYS = ("certificate-authority-data", "client-certificate-data", "client-key-data")
_SECRET_USER_KEYS = ("token", "password", "client-key-data", "client-certificate-data")
# Fragments shorter than this are not scrubbed: they would blank ordinary words.
_MIN_SCRUB = 4


class AccessError(Exception):
    """The kubeconfig or endpoint cannot be used; ``reason`` is the condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ClusterAccess:
    """A validated kubeconfig (one context, inline credentials) and its server URL."""

    config: dict[str, Any] = field(repr=False)
    server: str
    context: str
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets)

    @property
    def client_certificate(self) -> bool:
        """Whether the context's user authenticates with a client certificate."""
        context = _named(self.config, "contexts", self.context, "context")
        user = context.get("user")
        return bool(user) and "client-certificate-data" in _named(
            self.config, "users", user, "user")


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every credential value (and each of its lines) replaced."""
    for s in sorted(secrets, key=len, reverse=True):
        if len(s) >= _MIN_SCRUB and s in text:
            text = text.replace(s, REDACTED)
    return text


def _secret_values(doc: Any) -> tuple[str, ...]:
    """Every string under ``users`` and every ``*-data`` value, with their lines."""
    found: list[str] = []

    def walk(node: Any, secret: bool) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, secret or k in _SECRET_USER_KEYS or k in _DATA_KEYS or k == "user")
        elif isinstance(node, list):
            for v in node:
                walk(v, secret)
        elif isinstance(node, str) and secret:
            found.append(node)
            found.extend(line.strip() for line in node.splitlines() if line.strip())

    if isinstance(doc, dict):
        walk(doc.get("users"), True)
        walk(doc.get("clusters"), False)
    return tuple(dict.fromkeys(found))


def _yaml_problem(e: yaml.YAMLError) -> str:
    """Problem and position of a YAML error, without the snippet PyYAML quotes."""
    if isinstance(e, yaml.MarkedYAMLError):
        problem = e.problem or e.context or "syntax error"
        # Quoted fragments may be pieces of the document: drop them.
        problem = re.sub(r"'[^']*'|\"[^\"]*\"", "'...'", problem)
        mark = e.problem_mark or e.context_mark
        if mark is not None:
            return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
        return problem
    return "malformed document"


def _named(doc: dict[str, Any], section: str, name: str, key: str) -> dict[str, Any]:
    entries = doc.get(section)
    if not isinstance(entries, list):
        raise AccessError(INVALID_KUBECONFIG, f"kubeconfig has no {section} list")
    for i, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(key)
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise AccessError(INVALID_KUBECONFIG, f"kubeconfig {section}[{i}].{key} "
                                  "must be a mapping")
            return body
    raise AccessError(INVALID_KUBECONFIG, f"kubeconfig {section} has no entry named {name!r}")


def _check_base64(where: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise AccessError(INVALID_KUBECONFIG, f"kubeconfig {where} must be a non-empty string")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise AccessError(INVALID_KUBECONFIG, f"kubeconfig {where} is not valid base64") \
            from None


def _check_cluster(name: str, cluster: dict[str, Any]) -> None:
    where = f"cluster {name!r}"
    for key in _FILE_KEYS:
        if key in cluster:
            raise AccessError(INVALID_KUBECONFIG, f"kubeconfig {where} refers to a file "
                              f"({key}); embed it as {key}-data instead")
    if "certificate-authority-data" in cluster:
        _check_base64(f"{where} certificate-authority-data",
                      cluster["certificate-authority-data"])


def _check_user(name: str, user: dict[str, Any]) -> None:
    where = f"user {name!r}"
    if "exec" in user:
        raise AccessError(INVALID_KUBECONFIG, f"kubeconfig {where} uses an exec credential "
                          "plugin, which is not allowed; embed a token or client certificate")
    if "auth-provider" in user:
        raise AccessError(INVALID_KUBECONFIG, f"kubeconfig {where} uses an auth-provider, "
                          "which is not allowed; embed a token or client certificate")
    for key in _FILE_KEYS:
        if key in user:
            hint = "token" if key == "tokenFile" else f"{key}-data"
            raise AccessError(INVALID_KUBECONFIG, f"kubeconfig {where} refers to a file "
                              f"({key}); embed it as {hint} instead")
    cert, key_ = "client-certificate-data" in user, "client-key-data" in user
    if cert != key_:
        missing = "client-key-data" if cert else "client-certificate-data"
        raise AccessError(INVALID_KUBECONFIG, f"kubeconfig {where} has a client "
                          f"{'certificate' if cert else 'key'} but no {missing}")
    for k in ("client-certificate-data", "client-key-data"):
        if k in user:
            _check_base64(f"{where} {k}", user[k])
    if "token" in user and (not isinstance(user["token"], str) or not user["token"]):
        raise AccessError(INVALID_KUBECONFIG, f"kubeconfig {where} token must be a "
                          "non-empty string")
    if ("username" in user) != ("password" in user):
        raise AccessError(INVALID_KUBECONFIG, f"kubeconfig {where} needs both username "
                          "and password")


def normalize_url(url: str, *, what: str, reason: str) -> str:
    """``scheme://host:port[/path]`` with the default port made explicit, or AccessError."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise AccessError(reason, f"{what} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AccessError(reason, f"{what} must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise AccessError(reason, f"{what} must not carry credentials")
    if parts.query or parts.fragment:
        raise AccessError(reason, f"{what} must not have a query or fragment")
    port = port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host.lower()}:{port}{parts.path.rstrip('/')}"


def parse(kubeconfig: str, endpoint: str) -> ClusterAccess:
    """Validate ``kubeconfig`` for ``endpoint``; raises AccessError with a safe message."""
    endpoint_url = normalize_url(endpoint, what="spec.endpoint", reason=INVALID_ENDPOINT)
    if not kubeconfig.strip():
        raise AccessError(INVALID_KUBECONFIG, "spec.kubeconfig is empty")
    try:
        doc = yaml.safe_load(kubeconfig)
    except yaml.YAMLError as e:
        raise AccessError(INVALID_KUBECONFIG,
                          f"spec.kubeconfig is not valid YAML ({_yaml_problem(e)})") from None
    secrets = _secret_values(doc)
    try:
        return _parse_doc(doc, endpoint_url, secrets)
    except AccessError as e:
        e.message = scrub(e.message, secrets)
        e.args = (e.message,)
        raise


def _parse_doc(doc: Any, endpoint_url: str, secrets: tuple[str, ...]) -> ClusterAccess:
    if not isinstance(doc, dict):
        raise AccessError(INVALID_KUBECONFIG, "spec.kubeconfig must be a kubeconfig mapping "
                          "(apiVersion: v1, kind: Config)")
    if doc.get("kind", "Config") != "Config":
        raise AccessError(INVALID_KUBECONFIG, "kubeconfig kind must be Config")
    context_name = doc.get("current-context")
    if not context_name or not isinstance(context_name, str):
        raise AccessError(INVALID_KUBECONFIG, "kubeconfig has no current-context")
    context = _named(doc, "contexts", context_name, "context")
    cluster_name, user_name = context.get("cluster"), context.get("user")
    if not cluster_name:
        raise AccessError(INVALID_KUBECONFIG, f"kubeconfig context {context_name!r} names "
                          "no cluster")
    cluster = _named(doc, "clusters", cluster_name, "cluster")
    _check_cluster(cluster_name, cluster)
    if user_name:
        _check_user(user_name, _named(doc, "users", user_name, "user"))
    server = cluster.get("server")
    out = copy.deepcopy(doc)
    if server:
        if not isinstance(server, str):
            raise AccessError(INVALID_KUBECONFIG, f"kubeconfig cluster {cluster_name!r} "
                              "server must be a URL")
        server_url = normalize_url(server, what=f"kubeconfig cluster {cluster_name!r} server",
                                   reason=INVALID_KUBECONFIG)
        if server_url != endpoint_url:
            raise AccessError(ENDPOINT_MISMATCH, f"kubeconfig cluster {cluster_name!r} "
                              f"points at {server_url}, not at spec.endpoint {endpoint_url}")
    else:
        for entry in out["clusters"]:
            if isinstance(entry, dict) and entry.get("name") == cluster_name:
                entry["cluster"] = dict(entry.get("cluster") or {}, server=endpoint_url)
    return ClusterAccess(out, endpoint_url, context_name, secrets)
