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
