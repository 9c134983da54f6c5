"""Per-machine agent tokens: HMAC-SHA256 of the Machine uid under the regional secret.

Nothing is stored: the endpoint recomputes the token from the LCMMachine's
``spec.machineUid`` and compares in constant time. A token opens one machine only.
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
