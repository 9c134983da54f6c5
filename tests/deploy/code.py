"""What the service code itself says: its sources, the kinds it imports, the env it reads.

The deploy tests compare deploy/services.yaml, the charts and docker-compose.yml against
these facts, read from the code rather than restated.
"""

from __future__ import annotations

import ast
import ipaddress
import re
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from shared.config import Settings
from shared.models.kinds import ALL_KINDS

ROOT = Path(__file__).resolve().parents[2]
KIND_CLASSES = {k.__name__: k for k in ALL_KINDS}
SHARED_ENV = {f"CCLOUD_{f.upper()}" for f in Settings.__struct_fields__}
_LITERAL = re.compile(r"CCLOUD_[A-Z0-9_]*[A-Z0-9]")
# A settings Struct read with a prefix: f"CCLOUD_LCM_{name}", settings_from_env(cls, "CCLOUD_LCM_")
_PREFIXED = re.compile(
    r"""(?:f["'](CCLOUD_[A-Z0-9_]+_)\{|settings_from_env\(\w+,\s*["'](CCLOUD_[A-Z0-9_]+_)["'])"""
)
_FIELD = re.compile(r"^    ([a-z_][a-z0-9_]*)\s*:", re.M)
_NAME = re.compile(r"CCLOUD_[A-Z0-9_]*[A-Z0-9]")


def package_dir(module: str) -> Path:
    return ROOT.joinpath(*module.split("."))


@cache
def sources(module: str) -> tuple[Path, ...]:
    """The service's own files, plus its parent's top-level modules for grouped services
    (``services.providers.baremetal`` also runs ``services/providers/contract.py``)."""
    pkg = package_dir(module)
    files = sorted(p for p in pkg.rglob("*.py") if not p.name.startswith("test_"))
    parent = pkg.parent
    if parent != ROOT / "services":
        files += sorted(p for p in parent.glob("*.py") if not p.name.startswith("test_"))
    return tuple(files)


def kinds_used(module: str) -> set[str]:
    """Model kinds the service imports from shared.models (by class name)."""
    used: set[str] = set()
    for path in sources(module):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "shared.models"
            ):
                used |= {a.name for a in node.names if a.name in KIND_CLASSES}
    return used


def env_read(module: str) -> set[str]:
    """CCLOUD_* names the service reads: shared settings, literals, prefixed struct fields."""
    names = set(SHARED_ENV)
    for path in sources(module):
        text = path.read_text()
        names |= set(_LITERAL.findall(text))
        for groups in _PREFIXED.findall(text):
            prefix = next(g for g in groups if g)
            names |= {prefix + f.upper() for f in _FIELD.findall(text)}
    return names


def is_loopback(value: str) -> bool:
    """Whether a setting's value names this host only: a URL or bare host on 127/8, ::1 or
    localhost (inside a container that is the container itself)."""
    host = urlsplit(value).hostname if "://" in value else value.strip("[]")
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _constants(trees: list[ast.Module]) -> dict[str, str]:
    """Module-level ``NAME = "text"`` across the service's files (defaults named by a
    constant, like ``DEFAULT_IMAGE_BASE_URL``)."""
    out: dict[str, str] = {}
    for tree in trees:
        for node in tree.body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)):
                out.update({t.id: node.value.value for t in node.targets
                            if isinstance(t, ast.Name)})
    return out


def env_defaults(module: str) -> dict[str, str]:
    """CCLOUD_* settings the service reads -> their text default when unset: the shared
    Settings, prefixed settings Structs (``settings_from_env``) and ``get("CCLOUD_X", d)``
    style calls (``os.environ.get``, ``os.getenv`` or an alias of them)."""
    defaults = {f"CCLOUD_{k.upper()}": v for k in Settings.__struct_fields__
                if isinstance(v := getattr(Settings(), k), str)}
    paths = sources(module)
    trees = [ast.parse(p.read_text(), filename=str(p)) for p in paths]
    consts = _constants(trees)

    def text(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return consts.get(node.id) if isinstance(node, ast.Name) else None

    for path, tree in zip(paths, trees, strict=True):
        prefixes = [next(g for g in groups if g) for groups in _PREFIXED.findall(path.read_text())]
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and len(node.args) >= 2:
                name, default = text(node.args[0]), text(node.args[1])
                if name and _NAME.fullmatch(name) and default is not None:
                    defaults[name] = default
            elif isinstance(node, ast.ClassDef) and prefixes:
                for item in node.body:
                    if (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                            and (default := text(item.value) if item.value else None) is not None):
                        for prefix in prefixes:
                            defaults[prefix + item.target.id.upper()] = default
    return defaults


def loopback_settings(module: str) -> set[str]:
    """Settings the service reads whose default only works on the developer's machine."""
    return {k for k, v in env_defaults(module).items() if is_loopback(v)}


def unset_loopback(module: str, env: dict[str, str]) -> list[str]:
    """Loopback-default settings a deployment's ``env`` leaves unset or sets to loopback."""
    return sorted(k for k in loopback_settings(module) if k not in env or is_loopback(env[k]))


# --- store writes ------------------------------------------------------------------------------

# ``<store>.method(x)``: the verb and whether ``x`` is the object or its class.
_STORE_METHODS = {"create": "create", "update": "update", "update_status": "status",
                  "delete": "delete"}
# ``helper(store, obj, ...)`` from shared.runtime / services.lcm.objects: the write it does.
_HELPERS = {"status_writer": "status", "write_status": "status", "update_status": "status",
            "ensure_finalizer": "update", "remove_finalizer": "update", "patch": "update",
            "mark": "status"}


def _is_store(node: ast.expr) -> bool:
    """``store``, ``self.store``, ``rt.store``: the object store, not a NATS KV or HTTP API."""
    return (isinstance(node, ast.Name) and node.id == "store") or (
        isinstance(node, ast.Attribute) and node.attr == "store")


def _kind_of_annotation(node: ast.expr | None) -> str | None:
    """``Machine``, ``Machine | None``, ``"Machine"``, ``list[Machine]`` -> ``Machine`` (a
    collection counts as its items' kind: what is written is one of them)."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value if node.value in KIND_CLASSES else None
    if isinstance(node, ast.Name):
        return node.id if node.id in KIND_CLASSES else None
    if isinstance(node, ast.BinOp):
        return _kind_of_annotation(node.left) or _kind_of_annotation(node.right)
    if isinstance(node, ast.Subscript):
        return _kind_of_annotation(node.slice)
    return None


def _returns(trees: list[ast.Module]) -> dict[str, str]:
    """Function and method names -> the kind their return annotation names."""
    out: dict[str, str] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                kind = _kind_of_annotation(node.returns)
                if kind:
                    out[node.name] = kind
    return out


class _Writes(ast.NodeVisitor):
    """Per function: which kind each local name holds, and the writes made through them."""

    def __init__(self, path: Path, returns: dict[str, str]) -> None:
        self.path = path
        self.returns = returns
        self.writes: set[tuple[str, str]] = set()  # (kind, verb)
        self.unresolved: list[str] = []
        self.scope: list[tuple[dict[str, str], set[str]]] = []  # (name -> kind, generic params)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        kinds: dict[str, str] = {}
        generic: set[str] = set()
        a = node.args
        for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs]:
            kind = _kind_of_annotation(arg.annotation)
            if kind:
                kinds[arg.arg] = kind
            elif arg.arg != "self":
                generic.add(arg.arg)  # a wrapper's object/class: its callers are scanned
        self.scope.append((kinds, generic))
        for _ in range(4):  # local bindings, in any order (a heuristic, not flow analysis)
            before = (len(kinds), len(generic))
            for stmt in ast.walk(node):
                self._bind(stmt, kinds, generic)
            if (len(kinds), len(generic)) == before:
                break
        self.generic_visit(node)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def _value_kind(self, node: ast.expr, kinds: dict[str, str]) -> str | None:
        if isinstance(node, ast.Await):
            node = node.value
        if isinstance(node, ast.Name):
            return kinds.get(node.id)
        if isinstance(node, ast.Subscript):
            return self._value_kind(node.value, kinds)  # free[0]
        if isinstance(node, (ast.GeneratorExp, ast.ListComp)) and node.generators:
            gen = node.generators[0]
            if isinstance(node.elt, ast.Name) and isinstance(gen.target, ast.Name) and (
                    node.elt.id == gen.target.id):
                return self._value_kind(gen.iter, kinds)  # (h for h in hosts if ...)
            return None
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in KIND_CLASSES:
                return f.id  # Machine(...)
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in ("sorted", "list", "reversed") and node.args:
                return self._value_kind(node.args[0], kinds)
            if name in self.returns:
                return self.returns[name]  # claimed_by(...) -> BareMetalHost | None
            if name in ("get", "list_all", "list") and node.args and isinstance(
                    node.args[0], ast.Name) and node.args[0].id in KIND_CLASSES:
                return node.args[0].id  # store.get(Machine, ...)
            if name in _HELPERS and len(node.args) >= 2:
                return self._value_kind(node.args[1], kinds)
            if name in ("replace", "copy") and node.args:  # msgspec.structs.replace(obj, ...)
                return self._value_kind(node.args[0], kinds)
        return None

    def _bind(self, stmt: ast.AST, kinds: dict[str, str], generic: set[str]) -> None:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            kind = _kind_of_annotation(stmt.annotation)
            if kind:
                kinds[stmt.target.id] = kind
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(
                stmt.targets[0], ast.Name):
            target = stmt.targets[0].id
            value = stmt.value
            if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "copy" and (
                    value.args):
                value = value.args[0]  # mine = copy(obj): the same object's kind
            if isinstance(value, ast.Name) and value.id in generic:
                generic.add(target)  # current = obj, in a wrapper
                return
            kind = self._value_kind(stmt.value, kinds)
            if kind:
                kinds.setdefault(target, kind)
        elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.comprehension)) and isinstance(
                stmt.target, ast.Name):
            kind = self._value_kind(stmt.iter, kinds)
            if kind:
                kinds.setdefault(stmt.target.id, kind)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                if isinstance(item.optional_vars, ast.Name):
                    kind = self._value_kind(item.context_expr, kinds)
                    if kind:
                        kinds.setdefault(item.optional_vars.id, kind)

    def _record(self, node: ast.Call, verb: str, target: ast.expr, *, is_class: bool) -> None:
        kinds, generic = self.scope[-1] if self.scope else ({}, set())
        if is_class and isinstance(target, ast.Name) and target.id in KIND_CLASSES:
            self.writes.add((target.id, verb))
            return
        if is_class and isinstance(target, ast.Call) and isinstance(target.func, ast.Name) and (
                target.func.id == "type") and target.args:
            target = target.args[0]  # delete(type(obj), ...)
            is_class = False
        kind = None if is_class else self._value_kind(target, kinds)
        if kind:
            self.writes.add((kind, verb))
            return
        root = target
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id in generic:
            return
        self.unresolved.append(f"{self.path.relative_to(ROOT)}:{node.lineno} {verb}")

    def visit_Call(self, node: ast.Call) -> None:
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in _STORE_METHODS and _is_store(f.value) \
                and node.args:
            verb = _STORE_METHODS[f.attr]
            self._record(node, verb, node.args[0], is_class=verb == "delete")
        elif isinstance(f, ast.Attribute) and "delete" in f.attr and node.args and isinstance(
                node.args[0], ast.Name) and node.args[0].id in KIND_CLASSES:
            self.writes.add((node.args[0].id, "delete"))  # self._delete(UpdateGroup, ...)
        else:
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in _HELPERS and len(node.args) >= 2 and _is_store(node.args[0]):
                self._record(node, _HELPERS[name], node.args[1], is_class=False)
        self.generic_visit(node)


def store_writes(module: str) -> tuple[set[tuple[str, str]], list[str]]:
    """What the service writes, as RBAC grants ``(resource, verb)`` (a status write is
    ``("<plural>/status", "update")``), and the write sites whose kind the scan cannot tell."""
    grants: set[tuple[str, str]] = set()
    unresolved: list[str] = []
    paths = sources(module)
    trees = [ast.parse(p.read_text(), filename=str(p)) for p in paths]
    returns = _returns(trees)
    for path, tree in zip(paths, trees, strict=True):
        scan = _Writes(path, returns)
        scan.visit(tree)
        unresolved += scan.unresolved
        for kind, verb in scan.writes:
            plural = KIND_CLASSES[kind].PLURAL
            grants.add((f"{plural}/status", "update") if verb == "status" else (plural, verb))
    return grants, unresolved
