"""CustomResourceDefinition manifests generated from the msgspec models.

The models in ``kinds.py`` are the one source of truth; the CRDs a Kubernetes management
cluster needs (``deploy/charts/container-cloud/crds``) are derived from them here, and a
test checks the committed files match. Kubernetes requires *structural* schemas: no
``$ref``, a ``type`` on every node, no ``additionalProperties`` next to ``properties``,
OpenAPI v3.0 ``nullable`` instead of a ``null`` alternative. JSON Schema from
``msgspec.json.schema_components`` is rewritten into that form; only schemas with no
structure of their own (``Any``) get ``x-kubernetes-preserve-unknown-fields``.

Usage: ``python -m shared.models.crd OUT_DIR`` writes one YAML file per kind.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgspec
import yaml

from shared.models.kinds import ALL_KINDS
from shared.models.meta import GROUP, VERSION, Resource

Schema = dict[str, Any]

_KEEP_AS_IS = ("description", "pattern", "format", "minimum", "maximum", "minLength",
               "maxLength", "minItems", "maxItems", "uniqueItems", "multipleOf",
               "minProperties", "maxProperties", "required", "enum")


class SchemaError(ValueError):
    """A model uses a type that has no structural schema."""


def _enum_type(values: list[Any]) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {str}:
        return "string"
    if kinds <= {int}:
        return "integer"
    if kinds <= {int, float}:
        return "number"
    if kinds <= {bool}:
        return "boolean"
    raise SchemaError(f"enum mixes types: {values!r}")


def structural(node: Schema, defs: dict[str, Schema], *, where: str = "$") -> Schema:
    """Rewrite one JSON Schema node (msgspec output) into a structural OpenAPI v3 schema."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        merged = dict(defs[name]) | {k: v for k, v in node.items() if k != "$ref"}
        return structural(merged, defs, where=where)
    alternatives = node.get("anyOf") or node.get("oneOf")
    if alternatives:
        non_null = [a for a in alternatives if a.get("type") != "null"]
        nullable = len(non_null) < len(alternatives)
        rest = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
        if len(non_null) == 1:
            out = structural(non_null[0] | rest, defs, where=where)
        elif all(set(a) <= {"type"} for a in non_null):
            types = {a["type"] for a in non_null}
            if types == {"integer", "string"}:
                out = {"x-kubernetes-int-or-string": True}
            else:
                out = {"x-kubernetes-preserve-unknown-fields": True}
        else:
            raise SchemaError(f"{where}: unions of structured types have no structural schema")
        if nullable:
            out["nullable"] = True
        return dict(sorted(out.items(), key=_key_order))
    out: Schema = {}
    for key in _KEEP_AS_IS:
        if key in node:
            out[key] = node[key]
    if "const" in node:
        out["enum"] = [node["const"]]
    if "exclusiveMinimum" in node:
        out["minimum"], out["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if "exclusiveMaximum" in node:
        out["maximum"], out["exclusiveMaximum"] = node["exclusiveMaximum"], True
    typ = node.get("type")
    if isinstance(typ, list):
        non_null = [t for t in typ if t != "null"]
        if len(non_null) != 1:
            raise SchemaError(f"{where}: several types {typ!r}")
        typ = non_null[0]
        out["nullable"] = True
    if typ is None and "enum" in out:
        typ = _enum_type(out["enum"])
    if typ == "null":
        raise SchemaError(f"{where}: a field that is always null")
    if "properties" in node:
        typ = "object"
        out["properties"] = {
            k: structural(v, defs, where=f"{where}.{k}") for k, v in node["properties"].items()
        }
    elif typ == "object":
        extra = node.get("additionalProperties", True)
        if isinstance(extra, dict) and extra:
            out["additionalProperties"] = structural(extra, defs, where=f"{where}.*")
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if typ == "array":
        out["items"] = structural(node.get("items") or {}, defs, where=f"{where}[]")
    if typ is None:
        # Any: the only place unknown fields are kept.
        return {"x-kubernetes-preserve-unknown-fields": True} | (
            {"description": out["description"]} if "description" in out else {})
    out["type"] = typ
    if not out.get("required"):
        out.pop("required", None)  # OpenAPI v3.0 wants at least one entry
    return dict(sorted(out.items(), key=_key_order))


_ORDER = ("description", "type", "nullable", "required", "properties", "additionalProperties",
          "items")


def _key_order(item: tuple[str, Any]) -> tuple[int, str]:
    key = item[0]
    return (_ORDER.index(key) if key in _ORDER else len(_ORDER), key)


def openapi_schema(cls: type[Resource]) -> Schema:
    """The ``openAPIV3Schema`` of one kind."""
    (root,), defs = msgspec.json.schema_components([cls])
    schema = structural(root, defs, where=cls.KIND)
    props = schema["properties"]
    # Object metadata is the API server's own; a CRD may only say it is an object.
    props["metadata"] = {"type": "object"}
    props["apiVersion"] = {"type": "string"}
    props["kind"] = {"type": "string"}
    schema["required"] = [r for r in schema.get("required", []) if r != "metadata"]
    if not schema["required"]:
        del schema["required"]
    return schema


def crd_manifest(cls: type[Resource]) -> dict[str, Any]:
    doc = (cls.__doc__ or "").strip()
    schema = openapi_schema(cls)
    if doc:
        schema = {"description": doc.splitlines()[0]} | schema
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{cls.PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": cls.KIND,
                "listKind": f"{cls.KIND}List",
                "plural": cls.PLURAL,
                "singular": cls.KIND.lower(),
                "categories": ["containercloud"],
            },
            "scope": "Namespaced" if cls.NAMESPACED else "Cluster",
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": subresources(cls),
                "additionalPrinterColumns": printer_columns(cls),
                "schema": {"openAPIV3Schema": schema},
            }],
        },
    }


# Where the scale subresource finds a scalable kind's numbers (``Resource.SCALE``).
SCALE_PATHS = {
    "specReplicasPath": ".spec.replicas",
    "statusReplicasPath": ".status.replicas",
    "labelSelectorPath": ".status.selector",
}


def subresources(cls: type[Resource]) -> dict[str, Any]:
    """Every kind has a status subresource; a scalable one a scale subresource too."""
    out: dict[str, Any] = {"status": {}}
    if cls.SCALE:
        out["scale"] = dict(SCALE_PATHS)
    return out


def printer_columns(cls: type[Resource]) -> list[dict[str, str]]:
    """kubectl's columns: Phase and Ready only for kinds a controller writes them for."""
    columns = []
    if cls.HAS_PHASE:
        columns.append({"name": "Phase", "type": "string", "jsonPath": ".status.phase"})
    if cls.HAS_READY:
        columns.append({"name": "Ready", "type": "string",
                        "jsonPath": '.status.conditions[?(@.type=="Ready")].status'})
    columns.append({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
    return columns


def crd_manifests() -> list[dict[str, Any]]:
    return [crd_manifest(cls) for cls in ALL_KINDS]


def file_name(cls: type[Resource]) -> str:
    return f"{GROUP}_{cls.PLURAL}.yaml"


def render(cls: type[Resource]) -> str:
    header = "# Generated by `python -m shared.models.crd` from shared/models: do not edit.\n"
    return header + yaml.safe_dump(crd_manifest(cls), sort_keys=False, width=100)


def write_all(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for cls in ALL_KINDS:
        path = out_dir / file_name(cls)
        path.write_text(render(cls))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m shared.models.crd OUT_DIR", file=sys.stderr)
        return 2
    try:
        paths = write_all(Path(args[0]))
    except (OSError, SchemaError) as e:
        print(f"crd: {e}", file=sys.stderr)
        return 1
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
