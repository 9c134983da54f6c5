"""Simulated provider: latency, failure injection, quota, and KV persistence across restarts."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NATS

from services.providers.contract import NodeRequest, Provider, wait_for
from services.providers.errors import ProviderUnavailable, QuotaError
from services.providers.simulated import SimulatedConfig, SimulatedProvider
from services.providers.simulated.nodes import KVNodes


def request(uid: str) -> NodeRequest:
    return NodeRequest(machine_uid=uid, machine_name="w", namespace="default", cluster="c",
                       region="r")


def test_satisfies_the_contract() -> None:
    assert isinstance(SimulatedProvider(), Provider)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_rate"):
        SimulatedConfig(failure_rate=1.5)
    with pytest.raises(ValueError, match="provision_seconds"):
        SimulatedConfig(provision_seconds=-1)


async def test_latency_shapes_the_lifecycle() -> None:
    p = SimulatedProvider(SimulatedConfig(provision_seconds=0.3, power_seconds=0.2))
    ref = await p.create(request("u1"))
    assert (await p.status(ref)).phase == "Provisioning"
    await p.power(ref, on=True)
    st = await wait_for(p, ref, phase="Running", timeout=5, interval=0.05)
    assert st.addresses == await p.addresses(ref) and st.addresses
    await p.power(ref, on=False)
    await wait_for(p, ref, phase="Stopped", power_state="Off", timeout=5, interval=0.05)
    assert await p.delete(ref) and await p.find(request("u1")) is None


async def test_failure_rate_is_applied_and_seeded() -> None:
    p = SimulatedProvider(SimulatedConfig(failure_rate=0.5, seed=7))
    outcomes = []
    for i in range(40):
        try:
            await p.create(request(f"u{i}"))
            outcomes.append(True)
        except ProviderUnavailable as e:
            assert e.transient and e.code == 503
            outcomes.append(False)
    assert 5 < outcomes.count(False) < 35
    q = SimulatedProvider(SimulatedConfig(failure_rate=0.5, seed=7))
    again = []
    for i in range(40):
        try:
            await q.create(request(f"u{i}"))
            again.append(True)
        except ProviderUnavailable:
            again.append(False)
    assert again == outcomes


async def test_quota() -> None:
    p = SimulatedProvider(SimulatedConfig(quota=1))
    await p.create(request("a"))
    await p.create(request("a"))  # the same machine again is not a second node
    with pytest.raises(QuotaError):
        await p.create(request("b"))


async def test_kv_nodes_survive_a_restart(nc: NATS, prefix: str) -> None:
    nodes = KVNodes(nc, bucket=f"{prefix}-sim")
    await nodes.start()
    first = SimulatedProvider(nodes=nodes)
    ref = await first.create(request("u1"))
    await first.power(ref, on=True)

    nodes2 = KVNodes(nc, bucket=f"{prefix}-sim")
    await nodes2.start()
    second = SimulatedProvider(nodes=nodes2)
    assert await second.find(request("u1")) == ref
    assert await second.create(request("u1")) == ref
    assert len(await nodes2.all()) == 1
    assert (await second.status(ref)).power_state == "On"
    assert await second.delete(ref)
    assert await nodes.all() == []


def test_every_adapter_satisfies_the_contract() -> None:
    from services.providers.baremetal import BareMetalProvider
    from services.providers.openstack import OpenStackProvider
    from services.providers.vsphere import VsphereProvider

    for cls in (BareMetalProvider, OpenStackProvider, VsphereProvider, SimulatedProvider):
        for method in ("find", "create", "inspect", "power", "status", "addresses", "delete",
                       "close"):
            assert callable(getattr(cls, method)), (cls, method)
        assert cls.name in ("baremetal", "openstack", "vsphere", "simulated")
