"""Bootstrap data for a cloud node: cloud-init that starts its LCM agent.

A node boots from the region's image, which carries the ``lcm-agent`` (as Mirantis
Container Cloud's images do). What the image cannot know is which Machine the node is and
where to report: the OpenStack and vSphere providers hand it that as cloud-init user data
(Nova's ``user_data``, vSphere's ``guestinfo.userdata``): an env file readable by root
only with the regional LCM endpoint, the Machine and its token (an HMAC of the Machine's
uid with the region's agent secret, ``services.lcm.tokens``: the endpoint accepts it and
nothing else), the CA the endpoint's certificate chains to (``CCLOUD_AGENT_CA``, PEM) and
a systemd unit running the agent on the host.

``CCLOUD_AGENT_ENDPOINT`` is the LCM agents' URL as the nodes reach it; the secret is
LCM's: ``CCLOUD_LCM_SECRET`` (the chart passes the LCM chart's Secret), else LCM's own file
in a data folder the two share (compose, ``./dev up``), read when a node is made. Without
an endpoint the provider makes nodes without bootstrap data and says so at start; without
a secret it makes no node yet (a node that cannot report would never join), and the
Machine says why.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from services.lcm.config import SECRET_ENV, SECRET_FILE
from services.lcm.tokens import machine_token
from services.providers.errors import ProviderError
from shared.models import Machine

log = logging.getLogger(__name__)

ENDPOINT_ENV = "CCLOUD_AGENT_ENDPOINT"
CA_ENV = "CCLOUD_AGENT_CA"  # the PEM an https endpoint's certificate chains to
ENV_FILE = "/etc/ccloud/lcm-agent.env"
CA_FILE = "/etc/ccloud/lcm-ca.pem"
AGENT_CA_ENV = "CCLOUD_LCM_AGENT_CA"  # what the agent reads (services.lcm.agent.__main__)
UNIT_FILE = "/etc/systemd/system/lcm-agent.service"
AGENT_BINARY = "/usr/bin/lcm-agent"
UNIT = f"""[Unit]
Description=Container Cloud LCM agent
Wants=network-online.target
After=network-online.target

[Service]
EnvironmentFile={ENV_FILE}
ExecStart={AGENT_BINARY} --executor host --endpoint ${{CCLOUD_LCM_AGENT_ENDPOINT}} \
--machine ${{CCLOUD_LCM_AGENT_MACHINE}}
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""


class AgentSecretMissing(ProviderError):
    reason = "AgentSecretMissing"


@dataclass(frozen=True)
class AgentBootstrap:
    endpoint: str
    secret: bytes = field(default=b"", repr=False)  # never in a log line
    secret_file: Path | None = None  # LCM's, in a data folder both services share
    ca_pem: str = ""

    def _secret(self) -> bytes:
        if self.secret:
            return self.secret
        if self.secret_file is not None:
            with contextlib.suppress(FileNotFoundError):
                if value := self.secret_file.read_text().strip():
                    return value.encode()
        raise AgentSecretMissing(
            f"no LCM agent secret to sign the node's token ({SECRET_ENV}, or LCM's "
            f"{self.secret_file}): a node made now could never report")

    def user_data(self, machine: Machine) -> str:
        """The cloud-config for ``machine``'s node."""
        md = machine.metadata
        env = (f"CCLOUD_LCM_AGENT_ENDPOINT={self.endpoint}\n"
               f"CCLOUD_LCM_AGENT_MACHINE={md.namespace}/{md.name}\n"
               f"CCLOUD_LCM_AGENT_TOKEN={machine_token(self._secret(), md.uid or '')}\n")
        files = [{"path": ENV_FILE, "owner": "root:root", "permissions": "0600",
                  "content": env},
                 {"path": UNIT_FILE, "owner": "root:root", "permissions": "0644",
                  "content": UNIT}]
        if self.ca_pem:
            files[0]["content"] += f"{AGENT_CA_ENV}={CA_FILE}\n"
            files.append({"path": CA_FILE, "owner": "root:root", "permissions": "0644",
                          "content": self.ca_pem})
        config = {
            "write_files": files,
            "runcmd": [["systemctl", "daemon-reload"],
                       ["systemctl", "enable", "--now", "lcm-agent.service"]],
        }
        return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False)


def from_env(data_dir: str | Path, env: dict[str, str] | None = None) -> AgentBootstrap | None:
    """The bootstrap data settings, or None (logged) without an endpoint."""
    env = dict(os.environ) if env is None else env
    endpoint = env.get(ENDPOINT_ENV, "")
    if not endpoint:
        log.warning("%s not set: nodes are made without LCM agent bootstrap data (their "
                    "agents must be started some other way)", ENDPOINT_ENV)
        return None
    if not endpoint.startswith(("http://", "https://")):
        raise SystemExit(f"invalid {ENDPOINT_ENV} {endpoint!r}: not an http(s) URL")
    ca_pem = env.get(CA_ENV, "")
    if endpoint.startswith("https://") and not ca_pem:
        log.warning("%s is https and %s is not set: nodes trust their image's CAs only",
                    ENDPOINT_ENV, CA_ENV)
    return AgentBootstrap(endpoint=endpoint.rstrip("/"), secret=env.get(SECRET_ENV, "").encode(),
                          secret_file=Path(data_dir) / SECRET_FILE, ca_pem=ca_pem)
