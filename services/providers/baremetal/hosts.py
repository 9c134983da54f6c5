"""BareMetalHost inventory: pick a free host for a Machine, claim it, free it.

A host fits a Machine when it is in the Machine's region and namespace, carries every
label of ``spec.baremetal.hostSelector`` and has no consumer. The claim is
``spec.consumer = <machine uid>`` written with the host's resourceVersion, so two services
racing for one host cannot both win (the loser gets Conflict and tries the next host); the
host is labelled with the Machine's name in the same write, for people (``MACHINE_LABEL``).
A host already claimed by the Machine is always preferred: re-runs never claim twice, and a
Machine whose node exists (``status.providerId``) never claims another host.
The adapter gets the host with the BareMetalHostCredential it names resolved in memory
(``credentials.py``); a missing one fails the step with ``CredentialsNotFound``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from services.providers.baremetal.adapter import BareMetalProvider
from services.providers.baremetal.bmc import PROVIDER
from services.providers.baremetal.credentials import resolve
from services.providers.errors import NoCapacityError, NotFoundError
from shared.models import MACHINE_LABEL, BareMetalHost, BareMetalMachineSpec, Cluster, Machine
from shared.store import Conflict, NotFound, Store

log = logging.getLogger(__name__)


def fits(host: BareMetalHost, machine: Machine) -> bool:
    spec = machine.spec.baremetal or BareMetalMachineSpec()
    return (
        host.spec.region == machine.spec.region
        and not host.spec.consumer
        and not host.deleting
        and all(host.metadata.labels.get(k) == v for k, v in spec.host_selector.items())
    )


def claimed_by(hosts: list[BareMetalHost], uid: str) -> BareMetalHost | None:
    return next((h for h in hosts if h.spec.consumer == uid), None)


class HostTargets:
    """``Targets`` for bare metal: the adapter is bound to the host claimed for a machine."""

    def __init__(
        self,
        store: Store,
        *,
        factory: Callable[[BareMetalHost], BareMetalProvider] | None = None,
    ) -> None:
        self.store = store
        self.factory = factory or (lambda host: BareMetalProvider(host))

    async def _hosts(self, machine: Machine) -> list[BareMetalHost]:
        return await self.store.list_all(BareMetalHost, machine.metadata.namespace)

    async def claim(self, machine: Machine) -> BareMetalHost:
        uid = machine.metadata.uid or ""
        for _ in range(5):
            hosts = await self._hosts(machine)
            mine = claimed_by(hosts, uid)
            if mine is not None:
                return mine
            if machine.status.provider_id:
                # Its node was made on a host that is no longer in the store (deleted past
                # the gateway): claiming another would give the Machine a second node.
                raise NotFoundError(
                    f"the BareMetalHost of this machine's node ({machine.status.provider_id}) "
                    "is gone; delete the Machine to free it, or restore the host",
                    provider=PROVIDER,
                )
            free = sorted((h for h in hosts if fits(h, machine)), key=lambda h: h.metadata.name)
            if not free:
                selector = (machine.spec.baremetal or BareMetalMachineSpec()).host_selector
                raise NoCapacityError(
                    f"no free BareMetalHost in region {machine.spec.region}"
                    + (f" matching {selector}" if selector else ""),
                    provider=PROVIDER,
                )
            host = free[0]
            host.spec.consumer = uid
            host.spec.online = True
            host.metadata.labels[MACHINE_LABEL] = machine.metadata.name
            try:
                claimed = await self.store.update(host)
            except (Conflict, NotFound):
                continue  # someone else got there first; look again
            log.info("host %s claimed by machine %s", host.metadata.name, machine.metadata.name)
            return claimed
        raise NoCapacityError("hosts kept changing while claiming; will retry", provider=PROVIDER)

    async def provider_for(
        self, machine: Machine, cluster: Cluster | None, *, claim: bool
    ) -> BareMetalProvider | None:
        if claim:
            host = await self.claim(machine)
        else:
            host = claimed_by(await self._hosts(machine), machine.metadata.uid or "")
            if host is None:
                return None
        return self.factory((await resolve(self.store, host)).host)

    async def release(self, machine: Machine) -> None:
        uid = machine.metadata.uid or ""
        for _ in range(5):
            host = claimed_by(await self._hosts(machine), uid)
            if host is None:
                return
            host.spec.consumer = ""
            host.spec.online = False
            host.metadata.labels.pop(MACHINE_LABEL, None)
            try:
                await self.store.update(host)
                log.info("host %s released", host.metadata.name)
                return
            except Conflict:
                continue
            except NotFound:
                return

    async def close(self) -> None:
        return None
