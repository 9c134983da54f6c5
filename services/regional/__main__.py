"""``python -m services.regional``: the link of one region to management.

Runs next to the region's other services, against the regional nats-server
(``CCLOUD_NATS_URL``) and store, for ``CCLOUD_REGION``. Management is reached at
``CCLOUD_MANAGEMENT_URL`` (its client port, directly or through the same network path as the
leafnode), its JetStream domain named by ``CCLOUD_MANAGEMENT_DOMAIN`` (default
``management``). Without a separate management server there is nothing to run: the default
deployment combines management and the region on one server.
"""

from __future__ import annotations

import os

import msgspec

from services.regional.link import RegionLink
from services.regional.topology import MANAGEMENT_DOMAIN
from shared.bus import Bus
from shared.service import Parts, Runtime, connect, main
from shared.store.kv import KVStore


class _ManagedLink:
    """The link plus the management connection it owns."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.link: RegionLink | None = None
        self.mgmt_bus: Bus | None = None

    async def start(self) -> None:
        url = os.environ["CCLOUD_MANAGEMENT_URL"]
        assert isinstance(self.rt.store, KVStore)
        settings = self.rt.settings
        mgmt_settings = msgspec.structs.replace(settings, nats_url=url)
        mgmt_nc = await connect(mgmt_settings, f"region-link-{settings.region}")
        # Its writes at management are announced there as every writer's are (management's
        # bridge only covers a writer that died).
        self.mgmt_bus = Bus(mgmt_nc, prefix=settings.prefix, service="region-link")
        mgmt_store = KVStore(mgmt_nc, bucket=settings.objects_bucket,
                             on_commit=self.mgmt_bus.announce)
        await mgmt_store.start()
        self.link = RegionLink(
            region=settings.region, prefix=settings.prefix, local_nc=self.rt.nc,
            local_store=self.rt.store, mgmt_nc=mgmt_nc, mgmt_store=mgmt_store,
            mgmt_domain=os.environ.get("CCLOUD_MANAGEMENT_DOMAIN", MANAGEMENT_DOMAIN),
        )
        await self.link.start()

    async def stop(self) -> None:
        if self.link is not None:
            await self.link.stop()
            if self.mgmt_bus is not None:
                await self.mgmt_bus.stop()  # announces still in flight reach the stream
            await self.link.mgmt_nc.close()
            self.link = None


async def build(rt: Runtime) -> Parts:
    if not os.environ.get("CCLOUD_MANAGEMENT_URL"):
        raise SystemExit("CCLOUD_MANAGEMENT_URL is not set: the region link needs management")
    if not isinstance(rt.store, KVStore):
        raise SystemExit("the region link needs the embedded store (CCLOUD_STORE=kv)")
    return Parts(leader=[_ManagedLink(rt)])


if __name__ == "__main__":
    main("region-link", build)
