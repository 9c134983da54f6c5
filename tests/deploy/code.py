"""What the service code itself says: its sources, the kinds it imports, the env it reads.

The deploy tests compare deploy/services.yaml, the charts and docker-compose.yml against
these facts, read from the code rather than restated.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

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
