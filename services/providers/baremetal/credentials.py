"""A BareMetalHost's BMC credentials: inline, or the BareMetalHostCredential it names.

``spec.bmc.credentialsName`` names a BareMetalHostCredential in the host's namespace (as
Metal3 names a Secret). The credential is read from the store and merged into an
in-memory copy of the host, which only the Redfish client sees: the copy is never written
back, so the password stays in the credential object. The credential's resourceVersion
goes with the copy, so callers caching a client per host notice a rotated password.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from services.providers.baremetal.bmc import PROVIDER
from services.providers.errors import InvalidSpecError, ProviderError
from shared.models import BareMetalHost, BareMetalHostCredential
from shared.store import NotFound, Store

REASON_CREDENTIALS_NOT_FOUND = "CredentialsNotFound"


class CredentialsNotFoundError(ProviderError):
    """The host names a BareMetalHostCredential that does not exist (yet)."""

    reason = REASON_CREDENTIALS_NOT_FOUND
    transient = False  # someone has to create it; its creation re-triggers the host
    default_retry_after = 60.0


@dataclass(frozen=True)
class Resolved:
    """The host as its BMC client needs it, and the credential version it was built from."""

    host: BareMetalHost
    credential_version: str = ""


def reference(host: BareMetalHost) -> tuple[str, str] | None:
    """(namespace, name) of the credential the host names, or None for inline ones."""
    name = host.spec.bmc.credentials_name
    return (host.metadata.namespace or "default", name) if name else None


async def resolve(store: Store, host: BareMetalHost) -> Resolved:
    """The host with its named credential's username/password filled in (in memory only)."""
    ref = reference(host)
    if ref is None:
        return Resolved(host)
    ns, name = ref
    try:
        cred = await store.get(BareMetalHostCredential, name, ns)
    except NotFound:
        raise CredentialsNotFoundError(
            f"BareMetalHostCredential {ns}/{name} named by spec.bmc.credentialsName does not"
            " exist: create it or fix the name", provider=PROVIDER) from None
    if cred.spec.region != host.spec.region:
        raise InvalidSpecError(
            f"BareMetalHostCredential {ns}/{name} is for region {cred.spec.region}, host"
            f" {host.metadata.name} is in {host.spec.region}", provider=PROVIDER)
    bmc = msgspec.structs.replace(host.spec.bmc, credentials_name="",
                                  username=cred.spec.username, password=cred.spec.password)
    spec = msgspec.structs.replace(host.spec, bmc=bmc)
    return Resolved(msgspec.structs.replace(host, spec=spec),
                    cred.metadata.resource_version or "")
