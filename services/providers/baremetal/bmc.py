"""Talking to one BMC over Redfish with ``sushy``: address parsing, client, error mapping.

BMC addresses follow Metal3's forms: ``redfish://host[:port]/redfish/v1/Systems/<id>``
(https), ``redfish+http://...``, ``redfish+https://...``, or a plain ``http(s)://`` URL.
The system id comes from the path, else ``spec.bmc.systemId``, else the BMC's only system.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import TypeVar

import requests
import sushy
from sushy import exceptions as sx
from sushy.auth import BasicAuth
from sushy.resources.system.system import System

from services.providers.errors import (
    CredentialsError,
    InvalidSpecError,
    NotFoundError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    scrub,
)
from shared.models import BMCDetails

T = TypeVar("T")

PROVIDER = "baremetal"
_SYSTEMS = "/redfish/v1/Systems/"


class BMCAddress:
    """A parsed BMC address: Redfish root URL plus the system path, if the address names one."""

    def __init__(self, address: str, system_id: str = "") -> None:
        u = urllib.parse.urlsplit(address)
        scheme = {
            "redfish": "https",
            "redfish+https": "https",
            "redfish+http": "http",
            "http": "http",
            "https": "https",
        }.get(u.scheme)
        if scheme is None or not u.hostname:
            raise InvalidSpecError(
                f"unsupported BMC address {address!r}: expected redfish[+http|+https]://host/...",
                provider=PROVIDER,
            )
        self.root = f"{scheme}://{u.netloc.rpartition('@')[2]}/redfish/v1"
        path = u.path.rstrip("/")
        self.system_path = ""
        if _SYSTEMS in path + "/" and path.startswith(_SYSTEMS):
            self.system_path = path
        elif system_id:
            self.system_path = _SYSTEMS + system_id


def translate(err: Exception, *, what: str, secrets: tuple[str, ...] = ()) -> ProviderError:
    """Map a sushy/requests exception to a provider error with a safe message."""
    msg = scrub(f"{what}: {err}", secrets)
    code = getattr(err, "status_code", None)
    match err:
        case sx.AccessError():
            return CredentialsError(
                f"{what}: BMC refused the credentials", code=code, provider=PROVIDER
            )
        case sx.ResourceNotFoundError():
            return NotFoundError(msg, code=code, provider=PROVIDER)
        case sx.BadRequestError():
            return InvalidSpecError(msg, code=code, provider=PROVIDER)
        case sx.ServerSideError():
            return ProviderUnavailable(msg, code=code, provider=PROVIDER)
        case sx.ConnectionError() | requests.ConnectionError():
            cause = err.__cause__ or err.__context__
            if isinstance(cause, requests.Timeout) or "timed out" in str(err).lower():
                return ProviderTimeout(f"{what}: BMC did not answer in time", provider=PROVIDER)
            return ProviderUnavailable(f"{what}: BMC unreachable", provider=PROVIDER)
        case requests.Timeout():
            return ProviderTimeout(f"{what}: BMC did not answer in time", provider=PROVIDER)
        case ProviderError():
            return err
    return ProviderError(msg, code=code, provider=PROVIDER)


class BMC:
    """Blocking Redfish client for one host; call its methods from a worker thread."""

    def __init__(self, details: BMCDetails, *, timeout: float = 30.0) -> None:
        self.details = details
        self.address = BMCAddress(details.address, details.system_id)
        self.timeout = timeout
        self._client: sushy.Sushy | None = None
        self._secrets = (details.password,)

    def call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except Exception as e:  # translated, never leaked raw
            raise translate(e, what=what, secrets=self._secrets) from None

    @property
    def client(self) -> sushy.Sushy:
        if self._client is None:
            self._client = self.call(
                "connect",
                lambda: sushy.Sushy(
                    self.address.root,
                    auth=BasicAuth(self.details.username, self.details.password),
                    verify=self.details.verify,
                    server_side_retries=0,
                    read_timeout=self.timeout,
                    connect_timeout=min(self.timeout, 5.0),
                ),
            )
        return self._client

    def system(self) -> System:
        def get() -> System:
            path = self.address.system_path
            if not path:
                members = self.client.get_system_collection().members_identities
                if len(members) != 1:
                    raise InvalidSpecError(
                        f"BMC has {len(members)} systems; set bmc.systemId or name one"
                        " in the address",
                        provider=PROVIDER,
                    )
                path = members[0]
            return self.client.get_system(path)

        return self.call("get system", get)

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                client._conn.close()  # sushy.Sushy has no public close
            except Exception:  # best effort on shutdown
                pass
