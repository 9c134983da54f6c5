"""One read-only look at an attached cluster through the real Kubernetes client.

A probe builds a kubernetes-asyncio client from a validated kubeconfig, reads ``/version``
and lists the nodes, and closes the client. It only ever sends GET requests: attaching a
cluster must not change it. Failures become ``ProbeError`` with a condition reason
(``Unreachable``, ``Unauthorized``, ``TLSError``, ``APIError``) and a message that names the
endpoint and the failure, never a credential.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from services.attach.kubeconfig import INVALID_KUBECONFIG, AccessError, ClusterAccess
from shared.models import AttachedNode

UNREACHABLE = "Unreachable"
UNAUTHORIZED = "Unauthorized"
TLS_ERROR = "TLSError"
API_ERROR = "APIError"

DEFAULT_TIMEOUT = 10.0
ROLE_LABEL_PREFIX = "node-role.kubernetes.io/"


class ProbeError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Observation:
    kubernetes_version: str
    nodes: list[AttachedNode] = field(default_factory=list)

    @property
    def ready_nodes(self) -> int:
        return sum(1 for n in self.nodes if n.ready)


def node_of(node: dict[str, Any]) -> AttachedNode:
    """Our view of one Node object (read as JSON: any server version's fields will do)."""
    meta, status = node.get("metadata") or {}, node.get("status") or {}
    labels = meta.get("labels") or {}
    roles = sorted(k[len(ROLE_LABEL_PREFIX):] for k in labels
                   if k.startswith(ROLE_LABEL_PREFIX) and k != ROLE_LABEL_PREFIX)
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    return AttachedNode(
        name=str(meta.get("name") or ""),
        ready=ready,
        roles=roles,
        kubelet_version=str((status.get("nodeInfo") or {}).get("kubeletVersion") or ""),
    )


async def _json(call: Awaitable[aiohttp.ClientResponse]) -> dict[str, Any]:
    resp = await call
    async with resp:
        if not 200 <= resp.status <= 299:
            raise ApiException(status=resp.status, reason=resp.reason)
        body = await resp.json(content_type=None)
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    return body


async def _client(access: ClusterAccess) -> client.ApiClient:
    cfg = client.Configuration()
    try:
        await config.load_kube_config_from_dict(
            access.config, context=access.context, client_configuration=cfg
        )
    except (ConfigException, ValueError, TypeError) as e:
        raise AccessError(INVALID_KUBECONFIG, access.scrub(
            f"kubeconfig rejected by the Kubernetes client: {e}")) from None
    return client.ApiClient(cfg)


def _api_failure(access: ClusterAccess, e: ApiException) -> ProbeError:
    where = access.server
    if e.status in (401, 403):
        what = "rejected the credentials" if e.status == 401 else "denied access"
        return ProbeError(UNAUTHORIZED, f"{where} {what} ({e.status} {e.reason})")
    if e.status in (502, 503, 504):
        return ProbeError(UNREACHABLE, f"{where} answered {e.status} {e.reason}")
    return ProbeError(API_ERROR, access.scrub(f"{where} answered {e.status} {e.reason}"))


async def probe(access: ClusterAccess, *, timeout: float = DEFAULT_TIMEOUT) -> Observation:
    """Read the version and nodes of the cluster ``access`` points at (GETs only)."""
    api = await _client(access)
    try:
        async with api:
            version = await _json(client.VersionApi(api).get_code(
                _request_timeout=timeout, _preload_content=False))
            nodes = await _json(client.CoreV1Api(api).list_node(
                _request_timeout=timeout, _preload_content=False))
    except ApiException as e:
        raise _api_failure(access, e) from None
    except aiohttp.ClientConnectorCertificateError:
        raise ProbeError(TLS_ERROR, f"{access.server}: the server certificate was not "
                         "accepted (certificate-authority-data)") from None
    except aiohttp.ClientSSLError as e:
        raise ProbeError(TLS_ERROR, access.scrub(f"{access.server}: TLS failed: {e}")) \
            from None
    except aiohttp.ServerDisconnectedError as e:
        hint = (" (a server that refuses the client certificate does this)"
                if access.client_certificate and access.server.startswith("https:") else "")
        raise ProbeError(UNREACHABLE, access.scrub(
            f"{access.server} closed the connection: {e}{hint}")) from None
    except (aiohttp.ClientError, OSError) as e:
        raise ProbeError(UNREACHABLE, access.scrub(
            f"{access.server} is unreachable: {type(e).__name__}: {e}")) from None
    except TimeoutError:
        raise ProbeError(UNREACHABLE, f"{access.server} did not answer within {timeout:g}s") \
            from None
    except ValueError:
        raise ProbeError(API_ERROR, f"{access.server} did not answer like a Kubernetes API "
                         "server (malformed JSON)") from None
    items = sorted((node_of(n) for n in nodes.get("items") or [] if isinstance(n, dict)),
                   key=lambda n: n.name)
    return Observation(str(version.get("gitVersion") or ""), items)

