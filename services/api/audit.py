"""Audit log of every write: who, what, when and the outcome, as JSON lines.

Entries never carry spec content (credential kinds hold secrets); only identifiers.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from shared.models import now


class AuditLog:
    """Appends one JSON object per line to ``path`` (or keeps them in memory if None)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(
        self,
        *,
        user: str,
        verb: str,
        kind: str,
        namespace: str | None,
        name: str | None,
        code: int,
        resource_version: str | None = None,
        subresource: str = "",
    ) -> None:
        entry = {
            "time": now(),
            "user": user,
            "verb": verb,
            "kind": kind,
            "namespace": namespace or "",
            "name": name or "",
            "subresource": subresource,
            "resourceVersion": resource_version or "",
            "code": code,
        }
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock:
            if self.path is None:
                self.entries.append(entry)
                return
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
