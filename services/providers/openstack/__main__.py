"""``python -m services.providers.openstack``: the OpenStack provider of this region.

Machines use the OpenStackCredential their Cluster names in ``spec.credential``; every
OpenStackCredential of the region reports whether Keystone accepts it (``Valid``).
``CCLOUD_OPENSTACK_TIMEOUT`` (seconds, default 30) bounds each API call.
"""

from __future__ import annotations

from collections.abc import Callable

from services.providers.credential_status import credential_controller
from services.providers.openstack.adapter import OpenStackProvider
from services.providers.service import run, seconds
from services.providers.targets import CredentialTargets, Targets
from shared.models import OpenStackCredential
from shared.runtime import Controller
from shared.service import Runtime


def adapters() -> Callable[[OpenStackCredential], OpenStackProvider]:
    """Read at start-up, so a bad setting stops the service instead of a reconcile."""
    timeout = seconds("CCLOUD_OPENSTACK_TIMEOUT", 30.0)
    return lambda cred: OpenStackProvider(cred, timeout=timeout)


async def targets(rt: Runtime) -> Targets:
    return CredentialTargets(rt.store, OpenStackCredential, adapters(), provider="openstack")


def credentials(rt: Runtime) -> list[Controller]:
    return [credential_controller(rt, "openstack", OpenStackCredential, adapters())]


if __name__ == "__main__":
    run("openstack", targets, credentials)
