"""``python -m services.providers.openstack``: the OpenStack provider of this region.

Machines use the OpenStackCredential their Cluster names in ``spec.credential``.
``CCLOUD_OPENSTACK_TIMEOUT`` (seconds, default 30) bounds each API call.
"""

from __future__ import annotations

from services.providers.openstack.adapter import OpenStackProvider
from services.providers.service import run, seconds
from services.providers.targets import CredentialTargets, Targets
from shared.models import OpenStackCredential
from shared.service import Runtime


async def targets(rt: Runtime) -> Targets:
    timeout = seconds("CCLOUD_OPENSTACK_TIMEOUT", 30.0)
    return CredentialTargets(
        rt.store,
        OpenStackCredential,
        lambda cred: OpenStackProvider(cred, timeout=timeout),
        provider="openstack",
    )


if __name__ == "__main__":
    run("openstack", targets)
