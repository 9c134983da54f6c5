"""Audit log of every write: who, what, when and the outcome, as JSON lines.

Entries never carry spec content (credential kinds hold secrets); only identifiers.

The file stays open (``O_APPEND``) and each entry is one unbuffered ``write``, so a line is
in the file before the response leaves, nothing waits in a buffer at shutdown or crash,
and no open/close is paid per write. A file moved away (log rotation) or deleted is
noticed by its inode changing and the next entry goes to a fresh file at ``path``, as
when the file was opened per entry.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import msgspec

from shared.models import now

_encode = msgspec.json.Encoder().encode


STDOUT = "-"  # as kube-apiserver's --audit-log-path=-: the container's log


class AuditLog:
    """Appends one JSON object per line to ``path`` (standard output for ``-``; kept in
    memory if None)."""

    def __init__(self, path: str | Path | None) -> None:
        self.stdout = str(path) == STDOUT
        self.path = Path(path) if path and not self.stdout else None
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
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
        with self._lock:
            if self.stdout:
                os.write(1, _encode(entry) + b"\n")  # one write: lines never interleave
            elif self.path is None:
                self.entries.append(entry)
            else:
                os.write(self._file(), _encode(entry) + b"\n")

    def _file(self) -> int:
        """The open descriptor for ``path``, reopened if the file was moved or deleted."""
        assert self.path is not None
        try:
            st = os.stat(self.path)
            current: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            current = None
        if self._fd is not None and current == self._ident:
            return self._fd
        self._close()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        st = os.fstat(fd)
        self._fd, self._ident = fd, (st.st_dev, st.st_ino)
        return fd

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd, self._ident = self._fd, None, None
            os.close(fd)

    def close(self) -> None:
        """Release the file (a later entry reopens it); every entry is already written."""
        with self._lock:
            self._close()
