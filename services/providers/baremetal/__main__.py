"""``python -m services.providers.baremetal``: bare-metal provider and host inventory.

Runs the Machine controller (claims a BareMetalHost, provisions it over Redfish) and the
BareMetalHost controller (inspection, power state; re-run for the hosts naming a
BareMetalHostCredential when it changes) for this region.
``CCLOUD_BAREMETAL_IMAGE_BASE_URL`` is where image names resolve to ``<name>.iso``; the
nodes' config drives are served as ``media.py`` says (``CCLOUD_BAREMETAL_MEDIA_*``).
"""

from __future__ import annotations

import os
from pathlib import Path

from services.providers.baremetal.adapter import DEFAULT_IMAGE_BASE_URL, BareMetalProvider
from services.providers.baremetal.hosts import HostTargets
from services.providers.baremetal.inventory import HostReconciler
from services.providers.baremetal.media import ConfigDrives, MediaServer, MediaSettings
from services.providers.service import run
from services.providers.targets import Targets
from shared.models import BareMetalHost
from shared.runtime import Controller
from shared.service import Component, Runtime

MEDIA_DIR = "configdrives"  # in the data folder


def image_base_url() -> str:
    return os.environ.get("CCLOUD_BAREMETAL_IMAGE_BASE_URL", DEFAULT_IMAGE_BASE_URL)


def drives(rt: Runtime) -> ConfigDrives:
    return ConfigDrives(Path(rt.settings.data_dir) / MEDIA_DIR, MediaSettings.from_env().base_url)


async def targets(rt: Runtime) -> Targets:
    base, published = image_base_url(), drives(rt)
    return HostTargets(rt.store, factory=lambda host: BareMetalProvider(
        host, image_base_url=base, drives=published))


def parts(rt: Runtime) -> list[Component]:
    """The config drive server (first: drives are inserted once it answers) and the host
    inventory."""
    reconciler = HostReconciler(rt.store, region=rt.settings.region)
    media = MediaSettings.from_env()
    return [
        MediaServer(drives(rt), host=media.host, port=media.port),
        Controller(
            name="provider-baremetal-host",
            kind=BareMetalHost,
            reconciler=reconciler,
            store=rt.store,
            bus=rt.bus,
            region=rt.settings.region,
            workers=4,
            watches=[reconciler.credential_watch()],
        ),
    ]


if __name__ == "__main__":
    run("baremetal", targets, parts)
