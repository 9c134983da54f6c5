"""``python -m services.providers.vsphere``: the vSphere provider of this region.

Machines use the VsphereCredential their Cluster names in ``spec.credential``; every
VsphereCredential of the region reports whether vCenter accepts its login (``Valid``).
``CCLOUD_VSPHERE_TIMEOUT`` (seconds, default 60) bounds each call and task wait.
"""

from __future__ import annotations

from collections.abc import Callable

from services.providers.credential_status import credential_controller
from services.providers.service import run, seconds
from services.providers.targets import CredentialTargets, Targets
from services.providers.vsphere.adapter import VsphereProvider
from shared.models import VsphereCredential
from shared.runtime import Controller
from shared.service import Runtime


def adapters() -> Callable[[VsphereCredential], VsphereProvider]:
    """Read at start-up, so a bad setting stops the service instead of a reconcile."""
    timeout = seconds("CCLOUD_VSPHERE_TIMEOUT", 60.0)
    return lambda cred: VsphereProvider(cred, timeout=timeout)


async def targets(rt: Runtime) -> Targets:
    return CredentialTargets(rt.store, VsphereCredential, adapters(), provider="vsphere")


def credentials(rt: Runtime) -> list[Controller]:
    return [credential_controller(rt, "vsphere", VsphereCredential, adapters())]


if __name__ == "__main__":
    run("vsphere", targets, credentials)
