"""Client configuration: server URL, bearer token and default namespace.

Looked up in ``--config``, then ``$CCLOUD_CONFIG``, then ``~/.ccloud/config.yaml``;
``--server``/``--token`` flags and ``$CCLOUD_SERVER``/``$CCLOUD_TOKEN`` override the file::

    server: http://127.0.0.1:8443
    token: <bearer token>
    namespace: default
    oidc:                     # written by ccctl login, removed by ccctl logout
      issuer: https://idp.example/realms/acme
      client-id: ccloud
      idp-certificate-authority: /path/to/idp-ca.pem   # only when given to ccctl login
      id-token: <the ID token: the bearer token>
      refresh-token: <what renews it>

A session from ``ccctl login`` (the ``oidc`` key) is used before the file's ``token``: a
login is the more recent choice, and ``ccctl logout`` brings the static token back.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from services.cli.errors import CliError

DEFAULT_PATH = Path("~/.ccloud/config.yaml")
DEFAULT_NAMESPACE = "default"
SESSION_KEY = "oidc"


@dataclass(frozen=True)
class Config:
    server: str
    token: str
    namespace: str = DEFAULT_NAMESPACE
    source: str = ""
    # The ``oidc`` section when ``token`` is its ID token (so it may be refreshed).
    session: dict[str, Any] | None = None


def config_path(flag: str | None) -> Path:
    return Path(flag or os.environ.get("CCLOUD_CONFIG") or DEFAULT_PATH).expanduser()


def read_document(path: Path) -> dict[str, Any]:
    """The config file as a mapping ({} when there is none)."""
    if not path.exists():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise CliError(f"cannot read config {path}: {e}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise CliError(f"config {path} must be a mapping with server and token")
    return loaded or {}


def write_document(path: Path, doc: dict[str, Any]) -> None:
    """Replace the file atomically with mode 0600 (it holds tokens); through a symlink,
    the file it points at."""
    target = path.resolve()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False, default_flow_style=False)
        os.replace(tmp, target)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise CliError(f"cannot write config {path}: {e}") from None


def session_of(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The stored login, if it holds an ID token."""
    section = doc.get(SESSION_KEY)
    if isinstance(section, dict) and isinstance(section.get("id-token"), str):
        return section
    return None


def load(
    flag: str | None, *, server: str | None = None, token: str | None = None,
    must_exist: bool = True,
) -> Config:
    path = config_path(flag)
    if flag and must_exist and not path.exists():
        raise CliError(f"config file {path} does not exist")
    doc = read_document(path)
    server = server or os.environ.get("CCLOUD_SERVER") or doc.get("server")
    token = token or os.environ.get("CCLOUD_TOKEN")
    session = None if token else session_of(doc)
    if session is not None:
        token = session["id-token"]
    token = token or doc.get("token")
    if not server:
        raise CliError(
            f"no server configured: write 'server: URL' and 'token: ...' to {path} "
            "or pass --server/--token"
        )
    return Config(
        server=str(server).rstrip("/"),
        token=str(token or ""),
        namespace=str(doc.get("namespace") or DEFAULT_NAMESPACE),
        source=str(path),
        session=session,
    )
