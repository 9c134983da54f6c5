"""BareMetalHost reconciler: inspect each host over Redfish and keep its power state current.

Inspection (CPUs, memory, NICs, system uuid) runs when the host is new or its spec changed
(``observedGeneration``); the power state and provisioning state are refreshed every
``refresh_interval``, and every ``power_poll_interval`` while the power differs from
``online``. A host that is not ``online`` is kept powered off: BMCs apply power
changes late, so a power-on asked for just before a deprovision can land after it, and a
free host must not keep running whatever it booted. Powering on stays with the Machine
reconciler, which inserts the boot media first.

Each host keeps one Redfish client between passes (a new client costs a session and a
read of the service root on every refresh); it is replaced when the host's BMC details
or the resourceVersion of the BareMetalHostCredential it names change (a rotated
password takes effect on the next pass) and dropped after an error or when the host goes
away. A change to a credential re-triggers the hosts that name it (``credential_watch``),
so a host waiting for a missing or fixed credential recovers at once.

BMC trouble becomes ``BMCReachable=False`` with the provider's reason
(``InvalidCredentials``, ``CredentialsNotFound``, ``ProviderUnavailable``, ...) and a
backoff retry; the BMC password never appears in status or logs. ``Ready`` sums up the
two conditions, so a list of hosts shows at a glance which ones can take a machine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import msgspec

from services.providers.baremetal.adapter import BareMetalProvider
from services.providers.baremetal.credentials import reference, resolve
from services.providers.errors import ProviderError
from services.providers.steps import Backoff, mark_failed
from shared.bus import ChangeEvent
from shared.models import BareMetalHost, BareMetalHostCredential, HardwareInfo, Status
from shared.runtime import Request, Result, TransientError, Watch, status_writer
from shared.runtime import conditions as cond
from shared.store import NotFound, Store

log = logging.getLogger(__name__)

BMC_REACHABLE = "BMCReachable"
INSPECTED = "Inspected"


def summarize_host(status: Status) -> None:
    """Ready: the BMC answers and the host was inspected (and its boot MAC found), so the
    provider can claim and boot it; the first of the two that is not True says why."""
    cond.summarize(status, [BMC_REACHABLE, INSPECTED])


class HostReconciler:
    def __init__(
        self,
        store: Store,
        *,
        region: str | None = None,
        refresh_interval: float = 30.0,
        power_poll_interval: float = 2.0,
        factory: Callable[[BareMetalHost], BareMetalProvider] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.store = store
        self.region = region
        self.refresh_interval = refresh_interval
        self.power_poll_interval = power_poll_interval
        self.factory = factory or (lambda host: BareMetalProvider(host, timeout=15))
        self.backoff = backoff or Backoff(initial=2.0, cap=300.0)
        self._clients: dict[str, tuple[bytes, BareMetalProvider]] = {}
        # (namespace, credential name) -> names of the hosts naming it, as last reconciled.
        self._users: dict[tuple[str, str], set[str]] = {}
        self._named: dict[tuple[str, str], tuple[str, str]] = {}  # host -> its credential

    def credential_watch(self) -> Watch:
        """Credential events enqueue the hosts that name the credential."""
        return Watch(BareMetalHostCredential, self.hosts_using)

    def hosts_using(self, ev: ChangeEvent) -> Iterable[Request]:
        names = self._users.get((ev.namespace or "default", ev.name), ())
        return [Request(n, ev.namespace) for n in sorted(names)]

    def _note_reference(self, namespace: str | None, name: str, host: BareMetalHost | None) -> None:
        """Keep ``_users`` current for one host (None: the host is gone)."""
        key = (namespace or "default", name)
        old = self._named.pop(key, None)
        if old is not None:
            self._users[old].discard(name)
            if not self._users[old]:
                del self._users[old]
        ref = reference(host) if host is not None else None
        if ref is not None:
            self._named[key] = ref
            self._users.setdefault(ref, set()).add(name)

    async def reconcile(self, req: Request) -> Result | None:
        try:
            host = await self.store.get(BareMetalHost, req.name, req.namespace)
        except NotFound:
            self._note_reference(req.namespace, req.name, None)
            await self._drop(f"{req.namespace}/{req.name}")
            raise
        if (self.region is not None and host.spec.region != self.region) or host.deleting:
            self._note_reference(req.namespace, req.name, None)
            await self._drop(_key(host))
            return None
        self._note_reference(req.namespace, req.name, host)
        async with status_writer(self.store, host, derive=summarize_host) as h:
            return await self.reconcile_normal(h)

    async def _client(self, host: BareMetalHost) -> BareMetalProvider:
        """This host's client, kept while its BMC details and named credential stay the
        same (the credential's resourceVersion is part of the key: rotation takes effect)."""
        resolved = await resolve(self.store, host)
        fingerprint = msgspec.json.encode([host.spec.bmc, resolved.credential_version])
        cached = self._clients.get(_key(host))
        if cached is not None and cached[0] == fingerprint:
            cached[1].host = resolved.host
            return cached[1]
        provider = self.factory(resolved.host)
        self._clients[_key(host)] = (fingerprint, provider)
        if cached is not None:
            await cached[1].close()
        return provider

    async def _drop(self, key: str) -> None:
        cached = self._clients.pop(key, None)
        if cached is not None:
            await cached[1].close()

    async def close(self) -> None:
        for key in list(self._clients):
            await self._drop(key)

    async def reconcile_normal(self, host: BareMetalHost) -> Result:
        st = host.status
        key = host.metadata.uid or host.metadata.name
        try:
            provider = await self._client(host)
            if st.hardware is None or st.observed_generation != host.metadata.generation:
                st.provisioning_state = "inspecting"
                info = await provider.inspect_host()
                st.hardware = HardwareInfo(
                    cpus=info.cpus, memory_mib=info.memory_mib, nics=info.nics,
                    system_uuid=info.system_uuid,
                )
                boot_mac = host.spec.boot_mac_address.lower()
                if info.nics and boot_mac not in info.nics:
                    cond.mark_false(st, INSPECTED, "BootMACNotFound",
                                    f"boot MAC {boot_mac} is not among the host's NICs", "Warning")
                else:
                    cond.mark_true(st, INSPECTED, "Inspected")
            powered = await provider.power_state() == "On"
            st.power_state = "on" if powered else "off"
            if powered and not host.spec.online:
                log.info("host %s/%s is on but not online: powering it off",
                         host.metadata.namespace, host.metadata.name)
                await provider.power_off()
        except ProviderError as e:
            mark_failed(st, e, BMC_REACHABLE)
            st.provisioning_state = "registration error"
            delay = self.backoff.next(key, e)
            log.warning("host %s/%s: %s: %s (retry in %.1fs)", host.metadata.namespace,
                        host.metadata.name, e.reason, e, delay)
            await self._drop(_key(host))  # reconnect from scratch next time
            raise TransientError(f"{e.reason}: {e}", delay=delay) from None
        self.backoff.reset(key)
        cond.mark_true(st, BMC_REACHABLE, "Connected")
        st.consumer = host.spec.consumer
        st.provisioning_state = "provisioned" if host.spec.consumer else "available"
        st.observed_generation = host.metadata.generation
        if powered != host.spec.online:
            # In transition: kept off (see above), or claimed and about to be powered on by
            # the Machine's provisioning - a running node must not show "off" for long.
            return Result(requeue_after=self.power_poll_interval)
        return Result(requeue_after=self.refresh_interval)


def _key(host: BareMetalHost) -> str:
    return f"{host.metadata.namespace}/{host.metadata.name}"
