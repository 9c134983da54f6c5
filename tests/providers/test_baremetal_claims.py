"""A Machine claims one host for its life: when the host its node runs on disappears from
the store (deleted past the gateway, e.g. with kubectl on the system of record), the
provider reports it and never claims a second host for the same Machine."""

from __future__ import annotations

import pytest

from services.providers.baremetal.hosts import HostTargets
from services.providers.errors import NotFoundError
from shared.models import BareMetalHost, Machine, convert
from tests.harness import Harness


def host(name: str) -> BareMetalHost:
    return convert(BareMetalHost, {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"region": "local", "bootMacAddress": "52:54:00:00:00:0a",
                 "bmc": {"address": f"redfish://10.0.0.1/{name}"}}})


async def test_a_machine_whose_host_is_gone_claims_no_other(h: Harness) -> None:
    machine = await h.store.create(convert(Machine, {
        "metadata": {"name": "w0", "namespace": "default"},
        "spec": {"cluster": "c", "region": "local", "baremetal": {}}}))
    await h.store.create(host("bm-a"))
    targets = HostTargets(h.store)
    claimed = await targets.claim(machine)
    assert claimed.spec.consumer == machine.metadata.uid

    # Its node is made (providerId recorded); then the host is deleted, a free one exists.
    machine.status.provider_id = "baremetal:///default/bm-a"
    await h.store.delete(BareMetalHost, "bm-a", "default")
    await h.store.create(host("bm-b"))
    with pytest.raises(NotFoundError, match="baremetal:///default/bm-a"):
        await targets.claim(machine)
    free = await h.store.get(BareMetalHost, "bm-b", "default")
    assert free.spec.consumer == "" and not free.spec.online, "no second node"
