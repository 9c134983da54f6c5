"""The committed CRDs are the generated ones, and every schema is structural."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pytest
import yaml

from shared.models import ALL_KINDS, GROUP, VERSION
from shared.models.crd import SchemaError, crd_manifest, file_name, main, render, structural

CRD_DIR = Path(__file__).resolve().parents[2] / "deploy/charts/container-cloud/crds"


def test_committed_crds_match_the_models() -> None:
    expected = {file_name(cls): render(cls) for cls in ALL_KINDS}
    present = {p.name for p in CRD_DIR.glob("*.yaml")}
    assert present == set(expected), "regenerate: python -m shared.models.crd " + str(CRD_DIR)
    for name, text in expected.items():
        assert (CRD_DIR / name).read_text() == text, (
            f"{name} is stale: run python -m shared.models.crd deploy/charts/container-cloud/crds"
        )


def _walk(node: Any, path: str, problems: list[str]) -> None:
    if not isinstance(node, dict):
        problems.append(f"{path}: not a schema object")
        return
    for banned in ("$ref", "anyOf", "oneOf", "allOf", "not", "$defs", "const", "default"):
        if banned in node:
            problems.append(f"{path}: {banned}")
    untyped_ok = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
        "x-kubernetes-int-or-string")
    if "type" not in node and not untyped_ok:
        problems.append(f"{path}: no type")
    if node.get("type") == "object" and "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties with additionalProperties")
    if "required" in node and not node["required"]:
        problems.append(f"{path}: empty required")
    for k, v in (node.get("properties") or {}).items():
        _walk(v, f"{path}.{k}", problems)
    if isinstance(node.get("additionalProperties"), dict):
        _walk(node["additionalProperties"], f"{path}.*", problems)
    if "items" in node:
        _walk(node["items"], f"{path}[]", problems)


@pytest.mark.parametrize("cls", ALL_KINDS, ids=lambda c: c.KIND)
def test_schema_is_structural(cls: Any) -> None:
    crd = yaml.safe_load((CRD_DIR / file_name(cls)).read_text())
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{cls.PLURAL}.{GROUP}"
    assert spec["scope"] == ("Namespaced" if cls.NAMESPACED else "Cluster")
    assert spec["names"]["kind"] == cls.KIND and spec["names"]["plural"] == cls.PLURAL
    (version,) = spec["versions"]
    assert version["name"] == VERSION and version["subresources"]["status"] == {}
    assert ("scale" in version["subresources"]) == cls.SCALE
    schema = version["schema"]["openAPIV3Schema"]
    problems: list[str] = []
    _walk(schema, cls.KIND, problems)
    assert not problems, problems
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert "status" in schema["properties"]
    assert "spec" in schema["properties"]


@pytest.mark.parametrize("cls", [c for c in ALL_KINDS if c.SCALE], ids=lambda c: c.KIND)
def test_scalable_kinds_have_a_scale_subresource(cls: Any) -> None:
    """kube-apiserver serves ``/scale`` from these paths (an HPA, ``kubectl scale``): each
    must lead to a field of the schema, replicas integers and the selector a string."""
    version = crd_manifest(cls)["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    props = version["schema"]["openAPIV3Schema"]["properties"]
    for path, typ in (("spec.replicas", "integer"), ("status.replicas", "integer"),
                      ("status.selector", "string")):
        parent, leaf = path.split(".")
        assert props[parent]["properties"][leaf]["type"] == typ, path
    assert props["spec"]["properties"]["replicas"]["minimum"] == 0


def test_constraints_survive_the_conversion() -> None:
    from shared.models.kinds import Machine

    props = crd_manifest(Machine)["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "properties"]["spec"]
    assert props["required"] == ["cluster", "region"]
    assert props["properties"]["cluster"]["pattern"].startswith("^[a-z0-9]")
    assert props["properties"]["role"] == {"type": "string",
                                           "enum": ["control-plane", "worker"]}
    assert props["properties"]["openstack"]["nullable"] is True
    assert props["properties"]["vsphere"]["properties"]["memoryMib"]["minimum"] == 256


class _Odd(msgspec.Struct, rename="camel"):
    anything: Any
    either: int | str
    positive: Annotated[int, msgspec.Meta(gt=0)]
    one: Literal["only"]
    bag: dict[str, Any]
    maybe: list[str] | None = None


def _schema_of(cls: type) -> dict[str, Any]:
    (root,), defs = msgspec.json.schema_components([cls])
    return structural(root, defs)


def test_structural_conversion_of_awkward_types() -> None:
    props = _schema_of(_Odd)["properties"]
    assert props["anything"] == {"x-kubernetes-preserve-unknown-fields": True}
    assert props["either"] == {"x-kubernetes-int-or-string": True}
    assert props["positive"] == {"type": "integer", "minimum": 0, "exclusiveMinimum": True}
    assert props["one"] == {"type": "string", "enum": ["only"]}
    assert props["bag"]["type"] == "object"
    assert props["maybe"] == {"type": "array", "nullable": True, "items": {"type": "string"}}


class _A(msgspec.Struct, tag=True):
    a: int


class _B(msgspec.Struct, tag=True):
    b: int


class _Holder(msgspec.Struct):
    x: _A | _B


def test_unions_of_structs_are_refused() -> None:
    with pytest.raises(SchemaError, match="unions"):
        _schema_of(_Holder)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out").glob("*.yaml"))) == len(ALL_KINDS)
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err
