"""OpenAPI 3.1 document generated from the msgspec models (one source of truth).

Schemas come from ``msgspec.json.schema_components`` over every kind; paths are derived
from each kind's plural and scope, so a new kind appears here without edits.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from shared.models import ALL_KINDS, API_VERSION, GROUP, VERSION, Resource
from shared.runtime.recorder import Event

REF = "#/components/schemas/{name}"

_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Status",
    "description": "Kubernetes Status: the body of every error response.",
    "properties": {
        "kind": {"type": "string", "const": "Status"},
        "apiVersion": {"type": "string"},
        "status": {"type": "string", "enum": ["Success", "Failure"]},
        "message": {"type": "string"},
        "reason": {"type": "string"},
        "code": {"type": "integer"},
        "details": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "kind": {"type": "string"},
                "causes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "field": {"type": "string"},
                            "message": {"type": "string"},
                            "reason": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
    "required": ["kind", "status", "code"],
}

_SCALE = {
    "type": "object",
    "title": "Scale",
    "description": "autoscaling/v1 Scale: the scale subresource of a kind with replicas. "
    "A write sets the object's spec.replicas; metadata.resourceVersion, if given, is a "
    "precondition; status is ignored.",
    "properties": {
        "apiVersion": {"type": "string", "const": "autoscaling/v1"},
        "kind": {"type": "string", "const": "Scale"},
        "metadata": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "uid": {"type": "string"},
                "resourceVersion": {"type": "string"},
                "creationTimestamp": {"type": "string"},
            },
        },
        "spec": {
            "type": "object",
            "properties": {"replicas": {"type": "integer", "minimum": 0}},
            "required": ["replicas"],
        },
        "status": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer", "minimum": 0},
                "selector": {"type": "string"},
            },
        },
    },
    "required": ["spec"],
}

_WATCH_EVENT = {
    "type": "object",
    "title": "WatchEvent",
    "description": "One line of a watch stream (newline-delimited JSON).",
    "properties": {
        "type": {"type": "string", "enum": ["ADDED", "MODIFIED", "DELETED", "ERROR"]},
        "object": {"type": "object"},
    },
    "required": ["type", "object"],
}

_EVENT_LIST = {
    "type": "object",
    "title": "EventList",
    "description": "An object's recorded events, newest first.",
    "properties": {
        "apiVersion": {"type": "string", "const": API_VERSION},
        "kind": {"type": "string", "const": "EventList"},
        "metadata": {"type": "object"},
        "items": {"type": "array", "items": {"$ref": REF.format(name="Event")}},
    },
    "required": ["items"],
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad request (malformed JSON, body contradicts the URL)",
        401: "Missing or unknown bearer token",
        403: "The caller's role does not allow this",
        404: "Not found",
        409: ("Conflict: already exists, stale resourceVersion, or a write that would strand "
              "what depends on the object (a credential or release in use, a claimed host, "
              "a cluster's last control-plane machine, a machine for a cluster being "
              "deleted)"),
        410: "Gone: resourceVersion too old, relist",
        415: "Unsupported media type",
        422: "Invalid object; details.causes name the field paths",
    }
    return {str(c): {"description": text[c], "content": _json(_ref("Status"))} for c in codes}


def _params(*names: str) -> list[dict[str, Any]]:
    catalogue = {
        "namespace": {"name": "namespace", "in": "path", "required": True},
        "name": {"name": "name", "in": "path", "required": True},
        "labelSelector": {"name": "labelSelector", "in": "query"},
        "limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        "continue": {"name": "continue", "in": "query"},
        "watch": {"name": "watch", "in": "query", "schema": {"type": "boolean"}},
        "resourceVersion": {"name": "resourceVersion", "in": "query"},
        "timeoutSeconds": {"name": "timeoutSeconds", "in": "query",
                           "schema": {"type": "integer"}},
        "dryRun": {"name": "dryRun", "in": "query", "schema": {"type": "string", "enum": ["All"]},
                   "description": "All: make every check of the write, store nothing"},
    }
    out = []
    for n in names:
        p = dict(catalogue[n])
        p.setdefault("schema", {"type": "string"})
        out.append(p)
    return out


def _kind_paths(cls: type[Resource]) -> dict[str, Any]:
    kind, plural = cls.KIND, cls.PLURAL
    prefix = f"/apis/{GROUP}/{VERSION}"
    coll = f"{prefix}/namespaces/{{namespace}}/{plural}" if cls.NAMESPACED else f"{prefix}/{plural}"
    item = coll + "/{name}"
    scope = ("namespace",) if cls.NAMESPACED else ()
    obj = _ref(kind)
    ok = {"description": "OK", "content": _json(obj)}
    list_op = {
        "operationId": f"list{kind}",
        "tags": [kind],
        "summary": f"List or watch {plural}",
        "parameters": _params(
            *scope, "labelSelector", "limit", "continue", "watch", "resourceVersion",
            "timeoutSeconds",
        ),
        "responses": {
            "200": {
                "description": f"{kind}List, or with watch=true a stream of WatchEvent lines",
                "content": {
                    "application/json": {"schema": _ref(f"{kind}List")},
                    "application/json;stream=watch": {"schema": _ref("WatchEvent")},
                },
            },
            **_errors(400, 401, 403, 404, 410),
        },
    }
    paths: dict[str, Any] = {
        coll: {
            "get": list_op,
            "post": {
                "operationId": f"create{kind}",
                "tags": [kind],
                "parameters": _params(*scope, "dryRun"),
                "requestBody": {"required": True, "content": _json(obj)},
                "responses": {
                    "201": {"description": "Created", "content": _json(obj)},
                    **_errors(400, 401, 403, 409, 415, 422),
                },
            },
        },
        item: {
            "parameters": _params(*scope, "name"),
            "get": {
                "operationId": f"read{kind}",
                "tags": [kind],
                "responses": {"200": ok, **_errors(401, 403, 404)},
            },
            "put": {
                "operationId": f"replace{kind}",
                "tags": [kind],
                "description": "metadata.resourceVersion is required; an empty secret field "
                "keeps the stored secret.",
                "parameters": _params("dryRun"),
                "requestBody": {"required": True, "content": _json(obj)},
                "responses": {"200": ok, **_errors(400, 401, 403, 404, 409, 415, 422)},
            },
            "patch": {
                "operationId": f"patch{kind}",
                "tags": [kind],
                "parameters": _params("dryRun"),
                "requestBody": {
                    "required": True,
                    "content": {"application/merge-patch+json": {"schema": {"type": "object"}}},
                },
                "responses": {"200": ok, **_errors(400, 401, 403, 404, 409, 415, 422)},
            },
            "delete": {
                "operationId": f"delete{kind}",
                "tags": [kind],
                "parameters": _params("resourceVersion", "dryRun"),
                "responses": {
                    "200": {"description": "Deleted", "content": _json(_ref("Status"))},
                    "202": {"description": "Deletion started; finalizers pending",
                            "content": _json(obj)},
                    **_errors(401, 403, 404, 409),
                },
            },
        },
        item + "/status": {
            "parameters": _params(*scope, "name"),
            "get": {"operationId": f"read{kind}Status", "tags": [kind],
                    "responses": {"200": ok, **_errors(401, 403, 404)}},
            "put": {"operationId": f"replace{kind}Status", "tags": [kind],
                    "requestBody": {"required": True, "content": _json(obj)},
                    "responses": {"200": ok, **_errors(400, 401, 403, 404, 409, 422)}},
            "patch": {"operationId": f"patch{kind}Status", "tags": [kind],
                      "requestBody": {"required": True, "content": {
                          "application/merge-patch+json": {"schema": {"type": "object"}}}},
                      "responses": {"200": ok, **_errors(400, 401, 403, 404, 409, 415, 422)}},
        },
        item + "/events": {
            "parameters": _params(*scope, "name"),
            "get": {
                "operationId": f"list{kind}Events",
                "tags": [kind],
                "summary": f"Recent events of one {kind}, newest first",
                "description": "Condition changes recorded by controllers (kept about an "
                "hour); readable by whoever may read the object. limit: default 50, at "
                "most 500.",
                "parameters": _params("limit"),
                "responses": {
                    "200": {"description": "EventList", "content": _json(_ref("EventList"))},
                    **_errors(400, 401, 403, 404),
                },
            },
        },
    }
    if cls.SCALE:
        paths[item + "/scale"] = _scale_paths(kind, scope)
    if cls.NAMESPACED:
        paths[f"{prefix}/{plural}"] = {
            "get": {
                "operationId": f"list{kind}ForAllNamespaces",
                "tags": [kind],
                "summary": f"List or watch {plural} in every namespace the caller may read",
                "parameters": _params("labelSelector", "limit", "continue", "watch",
                                      "resourceVersion", "timeoutSeconds"),
                "responses": list_op["responses"],
            }
        }
    return paths


def _scale_paths(kind: str, scope: tuple[str, ...]) -> dict[str, Any]:
    scale = _ref("Scale")
    ok = {"description": "OK", "content": _json(scale)}
    return {
        "parameters": _params(*scope, "name"),
        "get": {"operationId": f"read{kind}Scale", "tags": [kind],
                "summary": f"Read the scale of one {kind}",
                "responses": {"200": ok, **_errors(401, 403, 404)}},
        "put": {"operationId": f"replace{kind}Scale", "tags": [kind],
                "summary": f"Set spec.replicas of one {kind}",
                "parameters": _params("dryRun"),
                "requestBody": {"required": True, "content": _json(scale)},
                "responses": {"200": ok, **_errors(400, 401, 403, 404, 409, 415, 422)}},
        "patch": {"operationId": f"patch{kind}Scale", "tags": [kind],
                  "summary": f"Merge patch the scale of one {kind}",
                  "parameters": _params("dryRun"),
                  "requestBody": {"required": True, "content": {
                      "application/merge-patch+json": {"schema": {"type": "object"}}}},
                  "responses": {"200": ok, **_errors(400, 401, 403, 404, 409, 415, 422)}},
    }


def _list_schema(cls: type[Resource]) -> dict[str, Any]:
    return {
        "type": "object",
        "title": f"{cls.KIND}List",
        "properties": {
            "apiVersion": {"type": "string", "const": API_VERSION},
            "kind": {"type": "string", "const": f"{cls.KIND}List"},
            "metadata": {
                "type": "object",
                "properties": {"resourceVersion": {"type": "string"},
                               "continue": {"type": "string"}},
            },
            "items": {"type": "array", "items": _ref(cls.KIND)},
        },
        "required": ["items"],
    }


@functools.cache
def document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components((*ALL_KINDS, Event), ref_template=REF)
    components["Status"] = _STATUS_SCHEMA
    components["EventList"] = _EVENT_LIST
    components["WatchEvent"] = _WATCH_EVENT
    components["Scale"] = _SCALE
    paths: dict[str, Any] = {}
    for cls in ALL_KINDS:
        components[f"{cls.KIND}List"] = _list_schema(cls)
        paths.update(_kind_paths(cls))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Container Cloud API",
            "version": VERSION,
            "description": "Kubernetes-style REST for every Container Cloud kind.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
