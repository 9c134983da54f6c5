"""Client configuration: server URL, bearer token and default namespace.

Looked up in ``--config``, then ``$CCLOUD_CONFIG``, then ``~/.ccloud/config.yaml``;
``--server``/``--token`` flags and ``$CCLOUD_SERVER``/``$CCLOUD_TOKEN`` override the file::

    server: http://127.0.0.1:8443
    token: <bearer token>
    namespace: default
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from services.cli.errors import CliError

DEFAULT_PATH = Path("~/.ccloud/config.yaml")
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class Config:
    server: str
    token: str
    namespace: str = DEFAULT_NAMESPACE
    source: str = ""


def config_path(flag: str | None) -> Path:
    return Path(flag or os.environ.get("CCLOUD_CONFIG") or DEFAULT_PATH).expanduser()


def load(flag: str | None, *, server: str | None = None, token: str | None = None) -> Config:
    path = config_path(flag)
    doc: dict = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise CliError(f"cannot read config {path}: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise CliError(f"config {path} must be a mapping with server and token")
        doc = loaded or {}
    elif flag:
        raise CliError(f"config file {path} does not exist")
    server = server or os.environ.get("CCLOUD_SERVER") or doc.get("server")
    token = token or os.environ.get("CCLOUD_TOKEN") or doc.get("token")
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
    )
