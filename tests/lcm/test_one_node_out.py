"""An upgrade step and a graceful reboot deciding in the same instant take one node out,
not two: whichever pass reads the cluster's nodes first keeps the lock until its cordon
is written, and the other then reads that cordon and waits.

The reconcilers run on the embedded store with the interleaving in the test's hand: the
first pass is held just after it has read the cluster's LCMMachines, the second starts
meanwhile. Without the shared lock both decide on the same picture (nothing out) and
cordon a node each - the control-plane node for the upgrade, the worker for the reboot.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.lcm.cluster import ClusterReconciler
from services.lcm.config import LCMSettings
from services.lcm.disruption import Disruptions
from services.lcm.gracefulreboot import GracefulRebootReconciler
from services.release.defaults import ensure_default_releases
from shared.models import (
    GRACEFUL_REBOOT_ANNOTATION,
    Cluster,
    GracefulRebootRequest,
    LCMMachine,
    Machine,
    convert,
)
from shared.runtime import Request, update_status
from shared.store.kv import KVStore
from tests.lcm.test_health_check import set_ready
from tests.waiting import eventually

NS = "default"
T0 = 1_700_000_000.0
OLD, NEW = "mke-3-7-0", "mke-3-7-1"


class HeldAfterNodes:
    """The store, except that the first list of LCMMachines is held until released."""

    def __init__(self, store: KVStore) -> None:
        self._store = store
        self.read = asyncio.Event()
        self.go_on = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def list_all(self, cls: type, *args: Any, **kwargs: Any) -> Any:
        out = await self._store.list_all(cls, *args, **kwargs)
        if cls is LCMMachine and not self.read.is_set():
            self.read.set()
            await self.go_on.wait()
        return out


async def deployed_cluster(store: KVStore) -> None:
    """Cluster c at OLD: m0 (control plane) and m1 (worker), deployed and Ready."""
    await ensure_default_releases(store)
    await store.create(convert(Cluster, {
        "metadata": {"name": "c", "namespace": NS},
        "spec": {"region": "local", "provider": "simulated", "release": OLD}}))
    for i, (name, role) in enumerate((("m0", "control-plane"), ("m1", "worker"))):
        m = await store.create(convert(Machine, {
            "metadata": {"name": name, "namespace": NS},
            "spec": {"cluster": "c", "region": "local", "role": role}}))
        await update_status(store, m, lambda o, i=i: setattr(o.status, "addresses",
                                                              [f"10.0.0.{i + 1}"]))
        await set_ready(store, name, "True", T0)
    rollout = ClusterReconciler(store, LCMSettings())
    await rollout.reconcile(Request("c", NS))  # makes the LCMMachines
    for lm in await store.list_all(LCMMachine, NS):
        assert lm.spec.release == OLD
        await update_status(store, lm, lambda o: setattr(o.status, "release", OLD))


async def out(store: KVStore) -> dict[str, str]:
    """Cordoned nodes -> who holds them."""
    return {lm.metadata.name: ("reboot" if GRACEFUL_REBOOT_ANNOTATION in lm.metadata.annotations
                               else "upgrade")
            for lm in await store.list_all(LCMMachine, NS) if lm.spec.cordoned}


@pytest.mark.parametrize("first", ["reboot", "upgrade"])
async def test_an_upgrade_step_and_a_reboot_deciding_at_once_take_one_node_out(
    kv_store: KVStore, first: str,
) -> None:
    store = kv_store
    await deployed_cluster(store)
    # The upgrade is asked for and a reboot of the worker, at the same moment.
    cluster = await store.get(Cluster, "c", NS)
    cluster.spec.release = NEW
    await store.update(cluster)
    await store.create(convert(GracefulRebootRequest, {
        "metadata": {"name": "c", "namespace": NS},
        "spec": {"region": "local", "machines": ["m1"]}}))

    held = HeldAfterNodes(store)
    disruptions = Disruptions()
    rollout = ClusterReconciler(held if first == "upgrade" else store,  # type: ignore[arg-type]
                                LCMSettings(), disruptions=disruptions)
    reboots = GracefulRebootReconciler(held if first == "reboot" else store,  # type: ignore[arg-type]
                                       disruptions=disruptions)
    passes = {"upgrade": lambda: rollout.reconcile(Request("c", NS)),
              "reboot": lambda: reboots.reconcile(Request("c", NS))}
    second = "upgrade" if first == "reboot" else "reboot"

    one = asyncio.create_task(passes[first]())
    await asyncio.wait_for(held.read.wait(), 10)  # it has read the nodes: none is out
    two = asyncio.create_task(passes[second]())
    # The second pass either waits for the lock or (no lock) runs to its end.
    await eventually(lambda: two.done() or disruptions.contenders(NS, "c") == 2,
                     what="the second pass waiting or done")
    held.go_on.set()
    await asyncio.wait_for(asyncio.gather(one, two), 30)

    assert await out(store) == ({"m1": "reboot"} if first == "reboot" else {"m0": "upgrade"})
    # Passes from here on keep it at one, each party waiting for the other's node.
    for run in ("upgrade", "reboot", "upgrade"):
        await passes[run]()
    assert len(await out(store)) == 1
    if first == "upgrade":
        grr = await store.get(GracefulRebootRequest, "c", NS)
        assert [(t.machine, t.state) for t in grr.status.targets] == [("m1", "Waiting")]
