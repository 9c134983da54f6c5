"""Store backend on a Kubernetes API server: our kinds as custom resources.

Used when the management cluster is a real Kubernetes cluster with the generated CRDs
(``deploy/charts/container-cloud/crds``) applied. The API server itself enforces the write
rules that ``semantics`` reproduces for the embedded backend: resourceVersion
preconditions, generation, the status subresource, finalizers. This module maps its
answers onto the store contract:

- error ``Status`` bodies become NotFound / AlreadyExists / Conflict (by reason) / Gone /
  Invalid / Unavailable;
- server-only metadata (managedFields, selfLink, deletionGracePeriodSeconds, ...) is dropped
  before decoding, since ``ObjectMeta`` rejects unknown fields;
- an update without a resourceVersion (allowed by the contract, refused by the API server
  for custom resources) reads the current version and retries on conflict;
- ``watch`` reads the raw event stream, reconnects from the last version it saw when the
  server ends a stream, and raises ``Gone`` on a 410 whether it comes as an HTTP status
  or as an ERROR event mid-stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from shared.models import GROUP, VERSION, ObjectMeta, Resource, convert, to_dict
from shared.store import prefetch, semantics
from shared.store.base import ListResult, Store, WatchEvent, check_status_patch
from shared.store.errors import (
    AlreadyExists,
    Conflict,
    Gone,
    Invalid,
    NotFound,
    StoreError,
    Unavailable,
)

R = TypeVar("R", bound=Resource)

log = logging.getLogger(__name__)

_META_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(ObjectMeta))
_UNCONDITIONAL_RETRIES = 8
MERGE_PATCH = "application/merge-patch+json"
# Seconds a single watch request may stay open before we reconnect from the last version.
WATCH_TIMEOUT_SECONDS = 300


def clean(raw: dict[str, Any]) -> dict[str, Any]:
    """Drop what the API server adds that our models do not carry."""
    out = {k: v for k, v in raw.items() if k in ("apiVersion", "kind", "metadata", "spec",
                                                 "status")}
    meta = raw.get("metadata") or {}
    out["metadata"] = {k: v for k, v in meta.items() if k in _META_FIELDS}
    return out


def _status_body(e: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(e.body) if e.body else {}
    except (ValueError, TypeError):
        body = {}
    return body if isinstance(body, dict) else {}


def map_error(e: ApiException | dict[str, Any]) -> StoreError:
    """Turn an API error (exception or Status object) into the store's error type."""
    if isinstance(e, ApiException):
        body = _status_body(e)
        code = int(body.get("code") or e.status or 0)
        message = body.get("message") or str(e.reason or "")
    else:
        body = e
        code = int(body.get("code") or 0)
        message = body.get("message") or ""
    reason = body.get("reason") or ""
    if code == 404:
        return NotFound(message)
    if code == 409:
        return AlreadyExists(message) if reason == "AlreadyExists" else Conflict(message)
    if code == 410:
        return Gone(message)
    if code in (400, 422):
        causes = (body.get("details") or {}).get("causes") or []
        return Invalid(message, causes=[
            {k: str(c[k]) for k in ("field", "message", "reason") if c.get(k)}
            for c in causes if isinstance(c, dict)
        ])
    if code == 0 or code >= 500 or code == 429:
        return Unavailable(message or "kubernetes API unavailable")
    err = StoreError(f"kubernetes API answered {code} {reason}: {message}")
    err.code = code
    err.reason = reason or err.reason
    return err


def _kubeconfig_path(given: Path | None) -> Path:
    path = given
    if path is None:
        env = os.environ.get("KUBECONFIG", "")
        path = Path(env.split(os.pathsep)[0] if env else "~/.kube/config").expanduser()
    if not path.is_file():
        raise Unavailable(f"kubeconfig {path} does not exist")
    return path


class KubeStore(Store):
    """Store on the custom-resources API of a Kubernetes cluster.

    Pass an ``ApiClient`` (the caller keeps owning it) or a kubeconfig path (this store
    builds and closes its client); with neither, in-cluster credentials or the default
    kubeconfig (``$KUBECONFIG``, ``~/.kube/config``) are used. ``start()`` must be awaited
    before use.
    """

    def __init__(
        self,
        api_client: client.ApiClient | None = None,
        *,
        kubeconfig: str | Path | None = None,
        context: str | None = None,
        group: str = GROUP,
        version: str = VERSION,
    ) -> None:
        self._client = api_client
        self._owns_client = api_client is None
        self._kubeconfig = Path(kubeconfig) if kubeconfig else None
        self._context = context
        self.group = group
        self.version = version
        self._api: client.CustomObjectsApi | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = client.ApiClient(configuration=await self._load_config())
        self._api = client.CustomObjectsApi(self._client)

    async def _load_config(self) -> client.Configuration:
        """The given kubeconfig; else in-cluster credentials; else the default kubeconfig."""
        cfg = client.Configuration()
        try:
            if self._kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=cfg)
                return cfg
            path = _kubeconfig_path(self._kubeconfig)
            await config.load_kube_config(
                config_file=str(path), context=self._context, client_configuration=cfg
            )
        except config.ConfigException as e:
            raise Unavailable(f"cannot load Kubernetes client configuration: {e}") from None
        return cfg

    async def close(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.close()
            self._client = None
        self._api = None

    @property
    def api(self) -> client.CustomObjectsApi:
        if self._api is None:
            raise Unavailable("store not started")
        return self._api

    # --- plumbing ------------------------------------------------------------------------

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except ApiException as e:
            raise map_error(e) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise Unavailable(f"kubernetes API unreachable: {e}") from None

    def _decode(self, cls: type[R], raw: dict[str, Any]) -> R:
        return convert(cls, clean(raw))

    def _body(self, obj: Resource) -> dict[str, Any]:
        body = to_dict(obj)
        meta = body.setdefault("metadata", {})
        for server_owned in ("uid", "generation", "creationTimestamp", "deletionTimestamp"):
            meta.pop(server_owned, None)
        if obj.metadata.uid:
            meta["uid"] = obj.metadata.uid  # the server treats it as a precondition
        return body

    # --- reads ---------------------------------------------------------------------------

    async def get(self, cls: type[R], name: str, namespace: str | None = None) -> R:
        semantics.check_namespace(cls, namespace)
        if (offered := prefetch.take(cls, name, namespace)) is not None:
            return offered
        if cls.NAMESPACED:
            raw = await self._call(self.api.get_namespaced_custom_object,
                                   self.group, self.version, namespace, cls.PLURAL, name)
        else:
            raw = await self._call(self.api.get_cluster_custom_object,
                                   self.group, self.version, cls.PLURAL, name)
        return self._decode(cls, raw)

    def _list_fn(self, cls: type[Resource], namespace: str | None) -> tuple[Any, tuple]:
        if namespace and not cls.NAMESPACED:
            raise Invalid(f"{cls.KIND} is cluster-scoped: metadata.namespace must be empty",
                          field="metadata.namespace")
        if namespace:
            return self.api.list_namespaced_custom_object, (
                self.group, self.version, namespace, cls.PLURAL)
        return self.api.list_cluster_custom_object, (self.group, self.version, cls.PLURAL)

    async def list(
        self,
        cls: type[R],
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListResult[R]:
        fn, args = self._list_fn(cls, namespace)
        kwargs: dict[str, Any] = {}
        if label_selector:
            kwargs["label_selector"] = label_selector
        if limit:
            kwargs["limit"] = limit
        if continue_token:
            kwargs["_continue"] = continue_token
        raw = await self._call(fn, *args, **kwargs)
        meta = raw.get("metadata") or {}
        items = [self._decode(cls, item) for item in raw.get("items") or []]
        return ListResult(
            items=items,
            resource_version=str(meta.get("resourceVersion") or ""),
            continue_token=meta.get("continue") or None,
        )

    # --- writes --------------------------------------------------------------------------

    async def create(self, obj: R) -> R:
        prefetch.writing()
        cls = type(obj)
        namespace = obj.metadata.namespace
        semantics.check_namespace(cls, namespace)
        if obj.metadata.resource_version:
            raise Invalid("metadata.resourceVersion must not be set on create",
                          field="metadata.resourceVersion")
        body = self._body(obj)
        body["metadata"].pop("uid", None)
        body.pop("status", None)
        if cls.NAMESPACED:
            raw = await self._call(self.api.create_namespaced_custom_object,
                                   self.group, self.version, namespace, cls.PLURAL, body)
        else:
            raw = await self._call(self.api.create_cluster_custom_object,
                                   self.group, self.version, cls.PLURAL, body)
        return self._decode(cls, raw)

    async def _replace(self, obj: R, *, status: bool) -> R:
        prefetch.writing()
        cls = type(obj)
        namespace = obj.metadata.namespace
        semantics.check_namespace(cls, namespace)
        conditional = bool(obj.metadata.resource_version)
        attempts = 1 if conditional else _UNCONDITIONAL_RETRIES
        for attempt in range(attempts):
            body = self._body(obj)
            if not conditional:
                current = await self.get(cls, obj.metadata.name, namespace)
                body["metadata"]["resourceVersion"] = current.metadata.resource_version
            try:
                if cls.NAMESPACED:
                    fn = (self.api.replace_namespaced_custom_object_status if status
                          else self.api.replace_namespaced_custom_object)
                    raw = await self._call(fn, self.group, self.version, namespace, cls.PLURAL,
                                           obj.metadata.name, body)
                else:
                    fn = (self.api.replace_cluster_custom_object_status if status
                          else self.api.replace_cluster_custom_object)
                    raw = await self._call(fn, self.group, self.version, cls.PLURAL,
                                           obj.metadata.name, body)
            except Conflict:
                if attempt + 1 >= attempts:
                    raise
                continue
            return self._decode(cls, raw)
        raise AssertionError("unreachable")

    async def update(self, obj: R) -> R:
        return await self._replace(obj, status=False)

    async def update_status(self, obj: R) -> R:
        return await self._replace(obj, status=True)

    async def patch_status(
        self, cls: type[R], name: str, namespace: str | None, patch: dict[str, Any]
    ) -> R:
        """``PATCH .../status`` with ``application/merge-patch+json``: the API server merges
        and validates against the CRD schema (a refusal is ``Invalid``, nothing written)."""
        semantics.check_namespace(cls, namespace)
        check_status_patch(patch)
        prefetch.writing()
        body = {"status": patch}
        if cls.NAMESPACED:
            raw = await self._call(self.api.patch_namespaced_custom_object_status, self.group,
                                   self.version, namespace, cls.PLURAL, name, body,
                                   _content_type=MERGE_PATCH)
        else:
            raw = await self._call(self.api.patch_cluster_custom_object_status, self.group,
                                   self.version, cls.PLURAL, name, body,
                                   _content_type=MERGE_PATCH)
        return self._decode(cls, raw)

    async def delete(
        self,
        cls: type[R],
        name: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
    ) -> R | None:
        semantics.check_namespace(cls, namespace)
        prefetch.writing()
        body = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version=resource_version)
            if resource_version else None,
        )
        if cls.NAMESPACED:
            raw = await self._call(self.api.delete_namespaced_custom_object, self.group,
                                   self.version, namespace, cls.PLURAL, name, body=body)
        else:
            raw = await self._call(self.api.delete_cluster_custom_object, self.group,
                                   self.version, cls.PLURAL, name, body=body)
        if not isinstance(raw, dict) or raw.get("kind") == "Status":
            return None
        return self._decode(cls, raw)

    # --- watch ---------------------------------------------------------------------------

    async def watch(  # type: ignore[override]
        self,
        cls: type[R],
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
    ) -> AsyncIterator[WatchEvent[R]]:
        fn, args = self._list_fn(cls, namespace)
        if resource_version in (None, "", "0"):
            # List then watch from the list's version: every object once, as ADDED.
            token: str | None = None
            while True:
                page = await self.list(cls, namespace, limit=500, continue_token=token)
                if token is None:
                    rv = page.resource_version
                for obj in page.items:
                    yield WatchEvent(type="ADDED", object=obj)
                token = page.continue_token
                if not token:
                    break
        else:
            rv = resource_version
        idle = 0
        while True:
            idle += 1
            async for type_, raw in self._stream(fn, args, rv):
                idle = 0
                if type_ == "BOOKMARK":
                    rv = str((raw.get("metadata") or {}).get("resourceVersion") or rv)
                    continue
                obj = self._decode(cls, raw)
                rv = obj.metadata.resource_version or rv
                yield WatchEvent(type=type_, object=obj)
            # The server ended the stream (timeout, restart): resume where we were, backing
            # off only when streams keep ending with nothing in them.
            if idle > 1:
                await asyncio.sleep(min(0.05 * 2**idle, 5.0))

    async def _stream(
        self, fn: Any, args: tuple, rv: str
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        resp = await self._call(
            fn, *args, watch=True, resource_version=rv, allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_SECONDS, _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(
                total=WATCH_TIMEOUT_SECONDS + 30, sock_connect=10
            ),
        )
        try:
            if not 200 <= resp.status <= 299:
                # Unread streams skip the client's error check: do it here.
                data = await resp.read()
                try:
                    body = json.loads(data)
                except ValueError:
                    body = {"code": resp.status, "message": data[:200].decode(errors="replace")}
                raise map_error(body if isinstance(body, dict) else {"code": resp.status})
            while True:
                try:
                    line = await resp.content.readline()
                except (TimeoutError, aiohttp.ClientError, OSError) as e:
                    log.info("watch stream broke, resuming from %s: %s", rv, e)
                    return
                if not line:
                    return
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    raise Unavailable(f"malformed watch event: {line[:200]!r}") from None
                type_ = event.get("type")
                raw = event.get("object") or {}
                if type_ == "ERROR":
                    raise map_error(raw)
                if type_ in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
                    yield type_, raw
        finally:
            resp.release()
