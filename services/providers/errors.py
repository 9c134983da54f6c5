"""Provider errors: what went wrong at a cloud or BMC, in terms a Machine condition can show.

Every adapter translates its SDK's exceptions into these types at the boundary, so the
provider service never sees a ``keystoneauth1`` or ``pyVmomi`` exception. Each error
carries:

- ``code``: the provider's own status (HTTP status, Redfish/vSphere fault name) or None;
- ``reason``: a CamelCase constant used as the condition reason (``InvalidCredentials``);
- ``transient``: whether retrying the same call later can succeed without anyone
  changing anything (quota freeing up, a timeout, a 503). Non-transient errors still get
  retried by the service, but slowly: they need a person to fix a credential or a spec.

Messages never contain secret values; adapters pass what they know is secret through
:func:`scrub` before raising.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

REASON_INVALID_CREDENTIALS = "InvalidCredentials"
REASON_QUOTA_EXCEEDED = "QuotaExceeded"
REASON_TIMEOUT = "ProviderTimeout"
REASON_NOT_FOUND = "NotFound"
REASON_INVALID_SPEC = "InvalidSpec"
REASON_NO_CAPACITY = "NoCapacity"
REASON_UNAVAILABLE = "ProviderUnavailable"
REASON_PROVIDER_ERROR = "ProviderError"

_MASK = "***"


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every secret value (longer than 2 chars, to avoid masking noise) in text."""
    for secret in secrets:
        if secret and len(secret) > 2:
            text = text.replace(secret, _MASK)
    return text


class ProviderError(Exception):
    """Root of provider errors. ``str(err)`` is safe to put in status, events and logs."""

    reason: ClassVar[str] = REASON_PROVIDER_ERROR
    transient: ClassVar[bool] = True
    # Suggested wait before the next attempt; None means "use the caller's backoff".
    default_retry_after: ClassVar[float | None] = None

    def __init__(
        self,
        message: str,
        *,
        code: int | str | None = None,
        provider: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.provider = provider
        self.retry_after = retry_after if retry_after is not None else self.default_retry_after

    def __str__(self) -> str:
        where = f"{self.provider}: " if self.provider else ""
        code = f" ({self.code})" if self.code not in (None, "") else ""
        return f"{where}{self.message}{code}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class CredentialsError(ProviderError):
    """The provider refused the credentials (wrong, expired, or lacking rights)."""

    reason = REASON_INVALID_CREDENTIALS
    transient = False
    default_retry_after = 60.0


class QuotaError(ProviderError):
    """The project's quota does not allow the request; may clear when others free room."""

    reason = REASON_QUOTA_EXCEEDED
    transient = True
    default_retry_after = 30.0


class ProviderTimeout(ProviderError):
    """A call or a wait for a state (ACTIVE, powered on, an IP) ran out of time."""

    reason = REASON_TIMEOUT
    transient = True


class NotFoundError(ProviderError):
    """The node (or a resource it needs) does not exist at the provider."""

    reason = REASON_NOT_FOUND
    transient = False


class InvalidSpecError(ProviderError):
    """The Machine asks for something the provider does not have (image, flavor, template)."""

    reason = REASON_INVALID_SPEC
    transient = False
    default_retry_after = 60.0


class NoCapacityError(ProviderError):
    """Nothing to place the node on right now (no free BareMetalHost, no host in cluster)."""

    reason = REASON_NO_CAPACITY
    transient = True
    default_retry_after = 15.0


class ProviderUnavailable(ProviderError):
    """The endpoint did not answer or answered 5xx; the call may succeed later."""

    reason = REASON_UNAVAILABLE
    transient = True


__all__ = [
    "CredentialsError",
    "InvalidSpecError",
    "NoCapacityError",
    "NotFoundError",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "QuotaError",
    "scrub",
] + [n for n in list(globals()) if n.startswith("REASON_")]
