"""The fake kube-apiserver grown to serve the built-in kinds a Helm chart installs.

No kube-apiserver can run here, so the deploy tests install the charts with the real Helm
library against this server. On top of ``FakeKubeApiServer`` (discovery, create/get/list/
update/delete with the real status codes and ``Status`` bodies) it adds what a real API
server does for an install:

- the core group at ``/api/v1`` (ConfigMaps, Secrets, Services, ServiceAccounts, ...) and
  the built-in groups apps, batch, networking.k8s.io, rbac.authorization.k8s.io, policy,
  apiextensions.k8s.io, admissionregistration.k8s.io;
- schema validation of every create and update against the Kubernetes OpenAPI schemas
  shipped by ``kubernetes-validate`` (422 Invalid, naming the field); fields the schema
  does not know are dropped with a warning, as the real server does unless the request
  asks for ``fieldValidation=Strict`` (then 422). ``warnings`` keeps them for the tests;
- a created CustomResourceDefinition is Established at once and its kinds are served.

Known simplifications: no admission (defaults, quotas), no controllers (Deployments get no
Pods), custom resources are not checked against their CRD schema; a strategic merge patch
(what Helm sends to adopt or upgrade a built-in object) is served only for Secrets and
ConfigMaps, where it is a JSON merge patch.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
from aiohttp import web
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

from tests.fakes.kube_apiserver import (
    ApiError,
    FakeKubeApiServer,
    ResourceType,
)

Obj = dict[str, Any]

BUILTIN_KINDS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("", "v1", "ConfigMap", "configmaps", True),
    ("", "v1", "Secret", "secrets", True),
    ("", "v1", "Service", "services", True),
    ("", "v1", "ServiceAccount", "serviceaccounts", True),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True),
    ("", "v1", "Namespace", "namespaces", False),
    ("apps", "v1", "Deployment", "deployments", True),
    ("apps", "v1", "StatefulSet", "statefulsets", True),
    ("apps", "v1", "DaemonSet", "daemonsets", True),
    ("batch", "v1", "CronJob", "cronjobs", True),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", True),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
     False),
    ("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
     "validatingwebhookconfigurations", False),
)

STRATEGIC = "application/strategic-merge-patch+json"
MAPS_ONLY = {"secrets", "configmaps"}  # kinds a strategic merge patch treats as a merge patch


class CoreType(ResourceType):
    """A kind of the core group: its apiVersion is just the version (``v1``)."""

    @property
    def api_version(self) -> str:
        return self.version

    @property
    def qualified(self) -> str:
        return self.plural


class FakeKubeCluster(FakeKubeApiServer):
    """``FakeKubeApiServer`` plus built-in kinds, schema validation and CRD serving."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.warnings: list[str] = []
        # The newest schema set kubernetes-validate ships that is not newer than the server.
        major_minor = tuple(int(x) for x in self.git_version.lstrip("v").split(".")[:2])
        self.schema_version = [
            v for v in kubernetes_validate.utils.all_versions()
            if tuple(int(x) for x in v.split(".")[:2]) <= major_minor][-1]
        for group, version, kind, plural, namespaced in BUILTIN_KINDS:
            self.register(group=group, version=version, kind=kind, plural=plural,
                          namespaced=namespaced)

    def register(
        self, *, group: str, version: str, kind: str, plural: str, namespaced: bool
    ) -> ResourceType:
        if group:
            return super().register(group=group, version=version, kind=kind, plural=plural,
                                    namespaced=namespaced)
        rt = CoreType(group, version, kind, plural, namespaced)
        self._types[(group, version, plural)] = rt
        return rt

    def objects(self, kind: str | None = None) -> list[Obj]:
        """Every stored object (of ``kind``), as the server holds it."""
        return [copy.deepcopy(o) for o in self._objects.values()
                if kind is None or o.get("kind") == kind]

    # --- routing ------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if (request.method == "PATCH" and request.content_type == STRATEGIC
                and parts[:2] == ["api", "v1"] and MAPS_ONLY & set(parts)):
            # Helm adopts and upgrades built-in objects with a strategic merge patch; on a
            # kind with no lists (maps only) it is exactly a JSON merge patch.
            request = request.clone(headers={**request.headers,
                                             "Content-Type": "application/merge-patch+json"})
        if parts[:2] == ["api", "v1"]:
            if len(parts) == 2:
                return web.json_response(self._core_resources())
            if parts[2] != "nodes":
                return await self._custom(request, "", "v1", parts[2:])
        return await super()._dispatch(request)

    def _core_resources(self) -> Obj:
        listing = self._resource_list("", "v1")
        listing["groupVersion"] = "v1"
        listing["resources"].append({
            "name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node",
            "verbs": ["get", "list"], "shortNames": ["no"],
        })
        return listing

    def _groups(self) -> dict[str, list[str]]:
        groups = super()._groups()
        groups.pop("", None)
        return groups

    # --- writes -------------------------------------------------------------------------

    def _validate(self, request: web.Request, rt: ResourceType, body: Any) -> None:
        if not isinstance(body, dict) or rt.group == "kaas.containercloud.dev":
            return
        name = (body.get("metadata") or {}).get("name", "")
        version = self.schema_version
        try:
            validate(body, version, strict=False)
        except kubernetes_validate.SchemaNotFoundError:
            return
        except kubernetes_validate.ValidationError as e:
            raise _schema_invalid(rt, name, e) from None
        try:
            validate(body, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            if request.query.get("fieldValidation") == "Strict":
                raise _schema_invalid(rt, name, e) from None
            self.warnings.append(f"{rt.kind}/{name}: {_describe(e)}")

    def _create(
        self, request: web.Request, rt: ResourceType, namespace: str | None, body: Obj
    ) -> Obj:
        self._validate(request, rt, body)
        created = super()._create(request, rt, namespace, body)
        if rt.kind == "CustomResourceDefinition":
            created = self._establish(created)
        return created

    def _write(
        self,
        request: web.Request,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        new: Obj,
        sub: bool,
    ) -> Obj:
        if not sub:
            self._validate(request, rt, new)
        return super()._write(request, rt, namespace, name, new, sub)

    def _establish(self, crd: Obj) -> Obj:
        """Serve the CRD's kinds and mark it Established, as the real server soon does."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for v in spec.get("versions") or []:
            if v.get("served"):
                self.register(group=spec["group"], version=v["name"], kind=names["kind"],
                              plural=names["plural"], namespaced=spec.get("scope") == "Namespaced")
        key = self._key(self._types[("apiextensions.k8s.io", "v1", "customresourcedefinitions")],
                        None, crd["metadata"]["name"])
        stored = self._objects[key]
        stored["status"] = {
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": m,
                 "lastTransitionTime": stored["metadata"]["creationTimestamp"]}
                for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                )
            ],
        }
        return copy.deepcopy(stored)


@cache
def _validator(version: str, kind: str, api_version: str, strict: bool) -> Any:
    """kubernetes-validate's schema for one kind, compiled once (its ``validate`` re-reads
    the large definitions file on every call). None when it ships no schema for the kind."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"v{version}-local" + ("-strict" if strict else "")
    try:
        schema = schema_contents(
            f"kubernetes-json-schema/{folder}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        return None
    definitions = schema_contents(f"kubernetes-json-schema/{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate(body: Obj, version: str, *, strict: bool) -> None:
    """Raise ``kubernetes_validate.ValidationError`` when ``body`` breaks its kind's schema."""
    v = _validator(version, body.get("kind", ""), body.get("apiVersion", ""), strict)
    if v is None:
        raise kubernetes_validate.SchemaNotFoundError(
            version=version, kind=body.get("kind"), api_version=body.get("apiVersion"))
    try:
        v.validate(body)
    except jsonschema.ValidationError as e:
        raise kubernetes_validate.ValidationError(e, version=version) from None


def _describe(e: kubernetes_validate.ValidationError) -> str:
    path = ".".join(str(p) for p in e.absolute_path)
    return f"{path or '<root>'}: {e.message}"


def _schema_invalid(
    rt: ResourceType, name: str, e: kubernetes_validate.ValidationError
) -> ApiError:
    detail = _describe(e)
    return ApiError(
        422, "Invalid", f'{rt.kind} "{name}" is invalid: {detail}',
        {"name": name, "group": rt.group, "kind": rt.kind,
         "causes": [{"reason": "FieldValueInvalid", "message": detail}]},
    )

