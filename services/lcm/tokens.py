"""Per-machine agent tokens and per-cluster MKE join tokens, HMAC-SHA256 under the
regional secret.

Nothing is stored: the endpoint recomputes an agent's token from the LCMMachine's
``spec.machineUid`` and compares in constant time; a token opens one machine only. A
cluster's join token is derived from its LCMCluster's uid; objects only ever name it by
``JOIN_TOKEN_REF`` (a state item's ``tokenRef``), and the endpoint hands the value to the
cluster's own agents alongside their details, so it never reaches the store, events or logs.
"""

from __future__ import annotations

import hashlib
import hmac


def machine_token(secret: bytes | str, uid: str) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"lcm-agent:{uid}".encode(), hashlib.sha256).hexdigest()


def verify(secret: bytes | str, uid: str, token: str) -> bool:
    if not uid or not token:
        return False
    return hmac.compare_digest(machine_token(secret, uid), token)


JOIN_TOKEN_REF = "cluster-join-token"


def join_token(secret: bytes | str, cluster_uid: str) -> str:
    """The MKE join token of the cluster whose LCMCluster has ``cluster_uid``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"mke-join:{cluster_uid}".encode(), hashlib.sha256).hexdigest()
