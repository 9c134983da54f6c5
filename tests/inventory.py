"""Bare metal inventory objects several suites start from."""

from __future__ import annotations

from shared.models import BareMetalHost, BareMetalHostCredential, convert
from shared.store import Store


async def rack_with_hosts(store: Store, namespace: str, *, password: str,
                          hosts: int = 2) -> None:
    """A BareMetalHostCredential ``rack-a`` and hosts ``bm-0``.. whose BMCs name it."""
    await store.create(convert(BareMetalHostCredential, {
        "metadata": {"name": "rack-a", "namespace": namespace},
        "spec": {"region": "local", "username": "admin", "password": password}}))
    for i in range(hosts):
        await store.create(convert(BareMetalHost, {
            "metadata": {"name": f"bm-{i}", "namespace": namespace},
            "spec": {"region": "local", "bootMacAddress": f"52:54:00:00:00:0{i}",
                     "bmc": {"address": f"redfish://10.0.0.{i}/1",
                             "credentialsName": "rack-a"}}}))
