"""Region status: which of the region's services are running, so a region's health shows
on its object (``ccctl get regions``, the UI) and not only in each service's probes.

Every regional service runs its controllers under a lease named ``<service>-<region>``
(``shared.service``); a lease that nobody holds means that service has no live replica.
The region expects LCM, the release/mirror service and one provider service per entry of
``spec.providers``. The check repeats every lease period, since a service that dies sends
no event, and every ``DOWN_RECHECK`` seconds while a service is missing.
"""

from __future__ import annotations

from nats.aio.client import Client as NATS

from shared.models import Region
from shared.runtime import Request, Result, status_writer
from shared.runtime import conditions as cond
from shared.runtime.leader import lease_holders
from shared.store import Store

SERVICES_READY = "ServicesReady"
DOWN_RECHECK = 2.0


def expected_services(region: Region) -> list[str]:
    return ["lcm", "release"] + [f"provider-{p}" for p in region.spec.providers]


class RegionReconciler:
    def __init__(
        self,
        store: Store,
        nc: NATS,
        *,
        leases_bucket: str,
        region: str | None,
        interval: float = 15.0,
        leader_election: bool = True,
    ) -> None:
        self.store = store
        self.nc = nc
        self.leases_bucket = leases_bucket
        self.region = region
        self.interval = interval
        self.leader_election = leader_election

    async def reconcile(self, req: Request) -> Result | None:
        region = await self.store.get(Region, req.name)
        if (self.region is not None and region.metadata.name != self.region) or region.deleting:
            return None
        services = expected_services(region)
        async with status_writer(self.store, region) as r:
            st = r.status
            st.observed_generation = r.metadata.generation
            if not self.leader_election:
                cond.mark_unknown(st, SERVICES_READY, "LeaderElectionOff",
                                  "services run without leases; their health is not known here")
                st.phase = "Unknown"
                return None
            leases = [f"{s}-{region.metadata.name}" for s in services]
            holders = await lease_holders(self.nc, self.leases_bucket, leases)
            missing = [s for s, lease in zip(services, leases, strict=True) if not holders[lease]]
            st.services_down = missing
            if missing:
                cond.mark_false(st, SERVICES_READY, "ServicesDown",
                                f"no running {', '.join(missing)} in this region", "Warning")
                cond.mark_false(st, cond.READY, "ServicesDown",
                                f"{len(missing)} of {len(services)} services down", "Warning")
                st.phase = "Degraded"
            else:
                cond.mark_true(st, SERVICES_READY, "Running", ", ".join(services) + " running")
                cond.mark_true(st, cond.READY, "Running")
                st.phase = "Ready"
        # While a service is missing, look again soon: one that is starting (every service
        # at a region's start) takes its lease within seconds, and the region should not
        # stay Degraded for a whole lease period after it has.
        return Result(requeue_after=min(self.interval, DOWN_RECHECK) if missing
                      else self.interval)
