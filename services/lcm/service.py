"""Assembly of the LCM service: its controllers (leader only) and the agent endpoint."""

from __future__ import annotations

from nats.aio.client import Client as NATS

from services.lcm.cluster import ClusterReconciler
from services.lcm.config import LCMSettings, load_secret
from services.lcm.disruption import Disruptions
from services.lcm.endpoint import Endpoint
from services.lcm.gracefulreboot import GracefulRebootReconciler
from services.lcm.healthcheck import HealthCheckReconciler
from services.lcm.lcmmachine import LCMMachineReconciler
from services.lcm.leases import LeaseView, node_leases
from services.lcm.machine import MachineReconciler
from services.lcm.pool import MachinePoolReconciler
from services.lcm.region import RegionReconciler
from shared.bus import Bus, ChangeEvent
from shared.config import Settings
from shared.models import (
    CLUSTER_LABEL,
    POOL_LABEL,
    Cluster,
    GracefulRebootRequest,
    LCMCluster,
    LCMMachine,
    Machine,
    MachineHealthCheck,
    MachinePool,
    Region,
    UpdateGroup,
)
from shared.runtime import Controller, Request, Watch, by_label
from shared.store import Store


def cluster_of(ev: ChangeEvent) -> list[Request]:
    """The Cluster an event's object belongs to: by cluster label, else by owner."""
    name = ev.labels.get(CLUSTER_LABEL)
    if name:
        return [Request(name, ev.namespace)]
    return [Request(o.name, ev.namespace) for o in ev.owners if o.kind == "Cluster"]


# A cluster's machines change in bursts (every node reporting, the provider and LCM both
# writing a Machine): gather a burst into one Cluster reconcile, which lists them all.
CHILD_BATCH = 0.2


def controllers(
    store: Store, bus: Bus, settings: LCMSettings, *, region: str | None
) -> list[Controller]:
    workers = settings.workers
    disruptions = Disruptions()  # one node out at a time, upgrade step or reboot
    return [
        Controller(
            name="lcm-cluster", kind=Cluster, store=store, bus=bus, region=region,
            workers=workers,
            reconciler=ClusterReconciler(store, settings, disruptions=disruptions),
            watches=[
                Watch(Machine, cluster_of, delay=CHILD_BATCH),
                Watch(LCMMachine, by_label(CLUSTER_LABEL), delay=CHILD_BATCH),
                Watch(LCMCluster, cluster_of),
                Watch(UpdateGroup, cluster_of),
            ],
        ),
        Controller(
            name="lcm-machine", kind=LCMMachine, store=store, bus=bus, region=region,
            workers=workers,
            reconciler=LCMMachineReconciler(
                store, heartbeat_timeout=settings.heartbeat_timeout,
                leases=LeaseView(node_leases(bus, settings), region),
            ),
        ),
        Controller(
            name="lcm-node", kind=Machine, store=store, bus=bus, region=region,
            workers=workers, reconciler=MachineReconciler(store),
        ),
        health_check_controller(store, bus, region=region, workers=workers),
        pool_controller(store, bus, region=region, workers=workers),
        graceful_reboot_controller(store, bus, region=region, workers=workers,
                                   disruptions=disruptions),
    ]


def graceful_reboot_controller(store: Store, bus: Bus, *, region: str | None, workers: int = 4,
                               disruptions: Disruptions | None = None) -> Controller:
    """GracefulRebootRequests, woken by their cluster's Machines (Ready, reboot answered),
    LCMMachines (drained, uncordoned) and Cluster (an upgrade ending)."""
    reboots = GracefulRebootReconciler(store, disruptions=disruptions)
    return Controller(
        name="lcm-gracefulreboot", kind=GracefulRebootRequest, store=store, bus=bus,
        region=region, workers=workers, reconciler=reboots,
        watches=[Watch(Machine, reboots.request_of, delay=CHILD_BATCH),
                 Watch(LCMMachine, reboots.request_of, delay=CHILD_BATCH),
                 Watch(Cluster, reboots.request_of)],
    )


def pool_controller(store: Store, bus: Bus, *, region: str | None, workers: int = 4,
                    ) -> Controller:
    """MachinePools, woken by their Machines (made, Ready, deleted) and their Cluster (made
    after the pool, being deleted)."""
    pools = MachinePoolReconciler(store)
    return Controller(
        name="lcm-pool", kind=MachinePool, store=store, bus=bus, region=region,
        workers=workers, reconciler=pools,
        watches=[Watch(Machine, by_label(POOL_LABEL), delay=CHILD_BATCH),
                 Watch(Cluster, pools.pools_of_cluster)],
    )


def health_check_controller(
    store: Store, bus: Bus, *, region: str | None, workers: int = 4
) -> Controller:
    """MachineHealthChecks, woken by their cluster's Machines (a condition that changed)
    and Cluster (an upgrade starting or ending)."""
    checks = HealthCheckReconciler(store)
    return Controller(
        name="lcm-healthcheck", kind=MachineHealthCheck, store=store, bus=bus, region=region,
        workers=workers, reconciler=checks,
        watches=[Watch(Machine, checks.checks_of_machine, delay=CHILD_BATCH),
                 Watch(Cluster, checks.checks_of_cluster, delay=CHILD_BATCH)],
    )


def endpoint(
    store: Store, bus: Bus, settings: LCMSettings, data_dir: str, *, region: str | None
) -> Endpoint:
    return Endpoint(store, load_secret(data_dir), settings, bus=bus, region=region)


def region_controller(store: Store, bus: Bus, nc: NATS, settings: Settings) -> Controller:
    """The Region's status; LCM runs it because every region has exactly one LCM."""
    return Controller(
        name="lcm-region", kind=Region, store=store, bus=bus, region=settings.region,
        reconciler=RegionReconciler(
            store, nc, leases_bucket=settings.leases_bucket, region=settings.region,
            interval=settings.lease_seconds, leader_election=settings.leader_election,
        ),
    )
