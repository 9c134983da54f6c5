"""LCM settings from the environment (``CCLOUD_LCM_*``), beside the shared service settings.

The agent secret is never a field of any object: it comes from ``CCLOUD_LCM_SECRET`` or a
file in the data dir created on first start (mode 0600), and only HMACs of it leave.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import msgspec

from shared.config import settings_from_env
from shared.tls import CERT_FILE, KEY_FILE

Seconds = Annotated[float, msgspec.Meta(gt=0)]

SECRET_ENV = "CCLOUD_LCM_SECRET"
SECRET_FILE = "lcm/agent-secret"


class LCMSettings(msgspec.Struct, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8430
    # Regional artifact mirror the agents install from.
    mirror_url: str = "http://127.0.0.1:8480"
    heartbeat_interval: Seconds = 10.0
    heartbeat_timeout: Seconds = 45.0
    # How old status.heartbeat may grow while the node's lease is renewed (kubelet's
    # nodeStatusReportFrequency): the object says roughly when the node was last heard from.
    heartbeat_status_interval: Seconds = 300.0
    poll_interval: Seconds = 5.0
    # Least time between an agent's progress reports within a pass (kubelet's
    # nodeStatusUpdateFrequency): each is a store write waking two controllers, so a
    # region that deploys thousands of nodes at once raises it.
    progress_interval: Seconds = 1.0
    # Reconciles in flight per controller. A reconcile mostly waits on store round trips,
    # so a region with thousands of machines needs more than a handful in flight.
    workers: Annotated[int, msgspec.Meta(ge=1)] = 16
    # A folder with tls.crt/tls.key (a mounted kubernetes.io/tls Secret): the agents'
    # endpoint serves HTTPS, so their tokens never cross the network in the clear.
    tls_cert_dir: str = ""

    def __post_init__(self) -> None:
        if self.tls_cert_dir:
            for name in (CERT_FILE, KEY_FILE):
                if not (Path(self.tls_cert_dir) / name).is_file():
                    raise ValueError(f"tls_cert_dir: no {Path(self.tls_cert_dir) / name}")
        # A live agent's last recorded sign of life is up to heartbeat_write_interval
        # (timeout / 3) plus one jittered interval (x1.2) old: past half the timeout for
        # the interval, live nodes would be called missing.
        if self.heartbeat_interval > self.heartbeat_timeout / 2:
            raise ValueError(
                f"heartbeat_interval ({self.heartbeat_interval:g}s) must be at most half of "
                f"heartbeat_timeout ({self.heartbeat_timeout:g}s)"
            )

    @property
    def heartbeat_write_interval(self) -> float:
        """Least age of a node's lease (or, while it is not called alive, of its stored
        heartbeat) before the endpoint records a newer one.

        A live agent's last sign of life is then at most this plus ``heartbeat_interval``
        old - well inside ``heartbeat_timeout`` - for one write per interval.
        """
        return self.heartbeat_timeout / 3

    @property
    def lease_ttl(self) -> float:
        """A lease nobody renews for this long is dropped from the bucket."""
        return self.heartbeat_timeout * 4

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> LCMSettings:
        return settings_from_env(cls, "CCLOUD_LCM_", env, **overrides)


def load_secret(data_dir: str | Path, env: dict[str, str] | None = None) -> bytes:
    """The regional agent secret: from the environment, else the data dir (created once)."""
    env = os.environ if env is None else env
    if env.get(SECRET_ENV):
        return env[SECRET_ENV].encode()
    path = Path(data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()
