"""Paused objects are left alone by every controller, and reconciled once unpaused.

Real controllers (the simulated provider's Machine controller and LCM's) run on a real
store and bus; a Machine paused by its annotation, or by its Cluster's ``spec.paused``,
gets no node, finalizer or status until it is unpaused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
from nats.aio.client import Client as NATS

from services.providers.machines import finalizer_for
from shared.models import Cluster, Machine, convert
from shared.runtime.paused import PAUSED_ANNOTATION, is_paused
from tests.bootstrap.controllers import ManagementControllers, running
from tests.harness import Harness, system
from tests.waiting import eventually

REGION = "region-one"
NS = "default"


@pytest.fixture
async def h(nc: NATS, prefix: str) -> AsyncIterator[Harness]:
    async with system(nc, prefix) as harness:
        yield harness


def cluster(name: str, *, paused: bool = False) -> Cluster:
    return convert(Cluster, {"metadata": {"name": name, "namespace": NS},
                             "spec": {"region": REGION, "provider": "simulated",
                                      "release": "mke-3-7-0", "paused": paused}})


def machine(name: str, cluster_name: str, annotations: dict[str, str] | None = None) -> Machine:
    return convert(Machine, {
        "metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
        "spec": {"cluster": cluster_name, "region": REGION, "role": "control-plane",
                 "simulated": {}},
    })


async def untouched(h: Harness, ctl: ManagementControllers, name: str) -> Machine:
    m = await h.store.get(Machine, name, NS)
    assert m.metadata.finalizers == [], m.metadata.finalizers
    assert m.status == Machine(metadata=m.metadata, spec=m.spec).status
    assert await ctl.nodes.all() == []
    return m


async def provisioned(h: Harness, name: str) -> Machine | None:
    m = await h.store.get(Machine, name, NS)
    return m if m.status.phase == "Running" else None


MACHINE_CONTROLLERS = ("provider-simulated-machine", "lcm-node", "lcm-machine")


def seen_by_all(ctl: ManagementControllers, before: dict[str, int],
                names: tuple[str, ...] = MACHINE_CONTROLLERS) -> bool:
    """Each named controller has processed at least one more request."""
    return all(ctl.by_name(n).reconciled > before.get(n, 0) for n in names)


def test_is_paused() -> None:
    assert is_paused(machine("m", "c", {PAUSED_ANNOTATION: "x"}))
    assert not is_paused(machine("m", "c"))
    assert is_paused(cluster("c", paused=True)) and not is_paused(cluster("c"))


async def test_paused_machine_left_alone_until_unpaused(h: Harness) -> None:
    await h.store.create(cluster("mgmt"))
    await h.store.create(machine("cp-0", "mgmt", {PAUSED_ANNOTATION: "bootstrap-pivot"}))
    async with running(h, REGION) as ctl:
        await eventually(lambda: seen_by_all(ctl, {}), timeout=10, what="machine seen")
        m = await untouched(h, ctl, "cp-0")
        # Another event while paused (a label change) is still left alone.
        m.metadata.labels["touched"] = "yes"
        m = await h.store.update(m)
        seen = {n: ctl.by_name(n).reconciled for n in MACHINE_CONTROLLERS[:2]}
        await eventually(lambda: seen_by_all(ctl, seen, MACHINE_CONTROLLERS[:2]), timeout=10,
                         what="update seen")
        m = await untouched(h, ctl, "cp-0")

        del m.metadata.annotations[PAUSED_ANNOTATION]
        await h.store.update(m)
        done = await eventually(lambda: provisioned(h, "cp-0"), timeout=10,
                                what="cp-0 provisioned after unpause")
        assert finalizer_for("simulated") in done.metadata.finalizers
        assert done.status.provider_id.startswith("simulated:///")
        assert len(await ctl.nodes.all()) == 1


async def test_machines_of_a_paused_cluster_wait_for_its_unpause(h: Harness) -> None:
    await h.store.create(cluster("mgmt", paused=True))
    await h.store.create(machine("cp-0", "mgmt"))
    async with running(h, REGION) as ctl:
        lcm_cluster = ctl.by_name("lcm-cluster")
        await eventually(lambda: seen_by_all(ctl, {}, MACHINE_CONTROLLERS[:2])
                         and lcm_cluster.reconciled > 0, timeout=10,
                         what="cluster and machine seen")
        await untouched(h, ctl, "cp-0")
        c = await h.store.get(Cluster, "mgmt", NS)
        assert c.metadata.finalizers == []  # LCM left the paused Cluster alone too

        await h.store.update(msgspec.structs.replace(
            c, spec=msgspec.structs.replace(c.spec, paused=False)))
        done = await eventually(lambda: provisioned(h, "cp-0"), timeout=12,
                                what="cp-0 provisioned after the cluster's unpause")
        assert finalizer_for("simulated") in done.metadata.finalizers
        c = await h.store.get(Cluster, "mgmt", NS)
        assert c.metadata.finalizers, "LCM reconciles the unpaused Cluster"


async def test_release_sweep_of_all_clusters_skips_a_paused_one(h: Harness) -> None:
    """The upgrades controller's "recompute every Cluster" request names no object: the
    runtime lets it through and the reconciler itself leaves the paused Cluster alone."""
    from services.release.controllers.upgrades import (
        RELEASE_WATCHES,
        AvailableUpgradesReconciler,
    )
    from services.release.defaults import ensure_default_releases
    from shared.models import KaaSRelease
    from shared.runtime import Controller

    await ensure_default_releases(h.store)
    await h.store.create(cluster("paused", paused=True))
    await h.store.create(cluster("live"))
    ctl = Controller(name="release-upgrades", kind=Cluster, store=h.store, bus=h.bus,
                     reconciler=AvailableUpgradesReconciler(h.store), resync_period=None,
                     watches=list(RELEASE_WATCHES))
    await ctl.start()
    try:
        async def upgrades(name: str) -> list[str]:
            return (await h.store.get(Cluster, name, NS)).status.available_upgrades

        await eventually(lambda: upgrades("live"), timeout=10, what="live cluster computed")
        kaas = (await h.store.list_all(KaaSRelease))[0]
        entry = next(s for s in kaas.spec.supported_cluster_releases if s.name == "mke-3-7-0")
        entry.available_upgrades = ["mke-3-7-1", "mke-3-8-0"]
        await h.store.update(kaas)

        async def widened() -> bool:
            return await upgrades("live") == ["mke-3-7-1", "mke-3-8-0"]

        await eventually(widened, timeout=10, what="the sweep after the KaaS change")
        assert await upgrades("paused") == []
    finally:
        await ctl.stop()
