"""``python -m services.providers.vsphere``: the vSphere provider of this region.

Machines use the VsphereCredential their Cluster names in ``spec.credential``.
``CCLOUD_VSPHERE_TIMEOUT`` (seconds, default 60) bounds each call and task wait.
"""

from __future__ import annotations

from services.providers.service import run, seconds
from services.providers.targets import CredentialTargets, Targets
from services.providers.vsphere.adapter import VsphereProvider
from shared.models import VsphereCredential
from shared.service import Runtime


async def targets(rt: Runtime) -> Targets:
    timeout = seconds("CCLOUD_VSPHERE_TIMEOUT", 60.0)
    return CredentialTargets(
        rt.store,
        VsphereCredential,
        lambda cred: VsphereProvider(cred, timeout=timeout),
        provider="vsphere",
    )


if __name__ == "__main__":
    run("vsphere", targets)
