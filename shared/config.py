"""Service settings from the environment (``CCLOUD_*``), with the embedded defaults."""

from __future__ import annotations

import os
from typing import Literal, TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)


def settings_from_env(
    cls: type[S], env_prefix: str, env: dict[str, str] | None = None, **overrides: object
) -> S:
    """Fill a settings Struct from ``<env_prefix><FIELD>`` variables, then ``overrides``;
    a bad value stops the process with a one-line message naming the setting."""
    env = dict(os.environ if env is None else env)
    raw: dict[str, object] = {}
    for name in cls.__struct_fields__:
        key = f"{env_prefix}{name.upper()}"
        if key in env:
            raw[name] = env[key]
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as e:
        raise SystemExit(f"invalid settings ({env_prefix}*): {e}") from None


class Settings(msgspec.Struct, kw_only=True):
    nats_url: str = "nats://127.0.0.1:4222"
    prefix: str = "ccloud"
    region: str = "local"
    store: Literal["kv", "kube"] = "kv"
    kubeconfig: str = ""
    health_host: str = "127.0.0.1"
    health_port: int = 0
    lease_seconds: float = 15.0
    leader_election: bool = True
    data_dir: str = "var/data"
    log_level: str = "INFO"

    @property
    def objects_bucket(self) -> str:
        return f"{self.prefix}-objects"

    @property
    def leases_bucket(self) -> str:
        return f"{self.prefix}-leases"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        return settings_from_env(cls, "CCLOUD_", env, **overrides)

    def to_env(self) -> dict[str, str]:
        return {
            f"CCLOUD_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in msgspec.structs.asdict(self).items()
        }
