"""An openstacksdk connection built from an OpenStackCredential, and SDK error mapping.

The credential has the shape of a clouds.yaml entry (``auth``, ``region_name``,
``interface``, ``verify``); password and application-credential auth are both accepted.
No clouds.yaml or OS_* environment is read: only the credential object counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import keystoneauth1.exceptions as ksa
import openstack
import openstack.config
from openstack import exceptions as osx

from services.providers.errors import (
    CredentialsError,
    InvalidSpecError,
    NotFoundError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    QuotaError,
    scrub,
)
from shared.models import OpenStackCredential

T = TypeVar("T")
PROVIDER = "openstack"


def cloud_config(cred: OpenStackCredential, *, timeout: float) -> dict[str, Any]:
    """The clouds.yaml-shaped dict for one credential."""
    a = cred.spec.auth
    if a.application_credential_id:
        auth_type = "v3applicationcredential"
        auth: dict[str, str] = {
            "auth_url": a.auth_url,
            "application_credential_id": a.application_credential_id,
            "application_credential_secret": a.application_credential_secret,
        }
    else:
        if not (a.username and a.project_name):
            raise InvalidSpecError(
                "credential needs username and projectName, or an application credential",
                provider=PROVIDER,
            )
        auth_type = "password"
        auth = {
            "auth_url": a.auth_url,
            "username": a.username,
            "password": a.password,
            "project_name": a.project_name,
            "user_domain_name": a.user_domain_name,
            "project_domain_name": a.project_domain_name,
        }
    return {
        "auth_type": auth_type,
        "auth": auth,
        "region_name": cred.spec.region_name,
        "interface": cred.spec.interface,
        "verify": cred.spec.verify,
        "api_timeout": timeout,
        "identity_api_version": "3",
    }


def connect(cred: OpenStackCredential, *, timeout: float) -> openstack.connection.Connection:
    config = openstack.config.OpenStackConfig(load_yaml_config=False, load_envvars=False)
    region = config.get_one(**cloud_config(cred, timeout=timeout))
    return openstack.connection.Connection(config=region, strict_proxies=False)


def _details(err: Exception) -> str:
    return str(getattr(err, "details", "") or getattr(err, "message", "") or err)


def translate(err: Exception, *, what: str, secrets: tuple[str, ...] = ()) -> ProviderError:
    """Map keystoneauth/openstacksdk exceptions to provider errors with safe messages."""
    if isinstance(err, ProviderError):
        return err
    detail = scrub(_details(err), secrets).strip()
    msg = f"{what}: {detail}" if detail else what
    match err:
        case ksa.Unauthorized() | ksa.http.Unauthorized():
            return CredentialsError(
                f"{what}: Keystone rejected the credentials", code=401, provider=PROVIDER
            )
        case ksa.ConnectTimeout() | ksa.RequestTimeout() | ksa.GatewayTimeout():
            return ProviderTimeout(f"{what}: no answer in time", provider=PROVIDER)
        case ksa.ConnectFailure() | ksa.DiscoveryFailure() | ksa.UnknownConnectionError():
            return ProviderUnavailable(f"{what}: endpoint unreachable", provider=PROVIDER)
        case ksa.EndpointNotFound() | osx.EndpointNotFound():
            return InvalidSpecError(f"{what}: {detail}", provider=PROVIDER)
        case osx.ResourceTimeout():
            return ProviderTimeout(msg, provider=PROVIDER)
        case osx.ResourceNotFound() | osx.NotFoundException():
            return NotFoundError(msg, code=404, provider=PROVIDER)
        case osx.HttpException():
            return _from_status(err.status_code, msg)
        case ksa.HttpError():
            return _from_status(getattr(err, "http_status", None), msg)
    return ProviderError(msg, provider=PROVIDER)


def _from_status(status: int | None, msg: str) -> ProviderError:
    lowered = msg.lower()
    if status == 401:
        return CredentialsError(msg, code=401, provider=PROVIDER)
    if status == 413 or "quota exceeded" in lowered or "overquota" in lowered:
        return QuotaError(msg, code=status, provider=PROVIDER)
    if status == 403:
        return CredentialsError(msg, code=403, provider=PROVIDER)
    if status == 404:
        return NotFoundError(msg, code=404, provider=PROVIDER)
    if status == 400:
        return InvalidSpecError(msg, code=400, provider=PROVIDER)
    if status in (408, 504):
        return ProviderTimeout(msg, code=status, provider=PROVIDER)
    if status is not None and status >= 500:
        return ProviderUnavailable(msg, code=status, provider=PROVIDER)
    return ProviderError(msg, code=status, provider=PROVIDER)


def guarded(what: str, fn: Callable[[], T], secrets: tuple[str, ...]) -> T:
    try:
        return fn()
    except Exception as e:  # translated: no SDK exception leaves the adapter
        raise translate(e, what=what, secrets=secrets) from None
