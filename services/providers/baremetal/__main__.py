"""``python -m services.providers.baremetal``: bare-metal provider and host inventory.

Runs the Machine controller (claims a BareMetalHost, provisions it over Redfish) and the
BareMetalHost controller (inspection, power state; re-run for the hosts naming a
BareMetalHostCredential when it changes) for this region.
``CCLOUD_BAREMETAL_IMAGE_BASE_URL`` is where image names resolve to ``<name>.iso``.
"""

from __future__ import annotations

import os

from services.providers.baremetal.adapter import DEFAULT_IMAGE_BASE_URL, BareMetalProvider
from services.providers.baremetal.hosts import HostTargets
from services.providers.baremetal.inventory import HostReconciler
from services.providers.service import run
from services.providers.targets import Targets
from shared.models import BareMetalHost
from shared.runtime import Controller
from shared.service import Runtime


def image_base_url() -> str:
    return os.environ.get("CCLOUD_BAREMETAL_IMAGE_BASE_URL", DEFAULT_IMAGE_BASE_URL)


async def targets(rt: Runtime) -> Targets:
    base = image_base_url()
    return HostTargets(
        rt.store, factory=lambda host: BareMetalProvider(host, image_base_url=base)
    )


def hosts(rt: Runtime) -> list[Controller]:
    reconciler = HostReconciler(rt.store, region=rt.settings.region)
    return [
        Controller(
            name="provider-baremetal-host",
            kind=BareMetalHost,
            reconciler=reconciler,
            store=rt.store,
            bus=rt.bus,
            region=rt.settings.region,
            workers=4,
            watches=[reconciler.credential_watch()],
        )
    ]


if __name__ == "__main__":
    run("baremetal", targets, hosts)
