"""How a provider service finds the adapter for a Machine: its *target*.

OpenStack and vSphere machines use the credential their Cluster names
(``spec.credential``, same namespace); the reference is recorded on the Machine as an
annotation on first use, so deletion still works after the Cluster is gone. Adapters are
cached per credential content, so a token or a vCenter session is reused across
reconciles and a changed credential gets a fresh adapter. The simulated provider has one
adapter for everything; bare metal claims hosts (see ``baremetal/hosts.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import msgspec

from services.providers.contract import Provider
from services.providers.errors import InvalidSpecError
from shared.models import TARGET_ANNOTATION, Cluster, Machine, Resource
from shared.store import NotFound, Store

C = TypeVar("C", bound=Resource)


class Targets(Protocol):
    async def provider_for(
        self, machine: Machine, cluster: Cluster | None, *, claim: bool
    ) -> Provider | None:
        """The adapter for this machine; with ``claim=False`` None when it never had one."""
        ...

    async def release(self, machine: Machine) -> None:
        """Give back what was claimed for the machine once its node is gone."""
        ...

    async def close(self) -> None: ...


class SingleTarget:
    """One adapter for every machine (the simulated provider)."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    async def provider_for(
        self, machine: Machine, cluster: Cluster | None, *, claim: bool
    ) -> Provider | None:
        return self.provider

    async def release(self, machine: Machine) -> None:
        return None

    async def close(self) -> None:
        await self.provider.close()


class CredentialTargets(Generic[C]):
    """Adapters bound to the credential object the machine's Cluster names."""

    def __init__(
        self,
        store: Store,
        kind: type[C],
        factory: Callable[[C], Provider],
        *,
        provider: str,
    ) -> None:
        self.store = store
        self.kind = kind
        self.factory = factory
        self.provider = provider
        self._cache: dict[tuple[str, str], tuple[str, Provider]] = {}

    def reference(self, machine: Machine, cluster: Cluster | None) -> str:
        recorded = machine.metadata.annotations.get(TARGET_ANNOTATION, "")
        if recorded:
            return recorded
        if cluster is None or not cluster.spec.credential:
            raise InvalidSpecError(
                f"cluster {machine.spec.cluster!r} names no {self.kind.KIND} in spec.credential",
                provider=self.provider,
            )
        return cluster.spec.credential

    async def provider_for(
        self, machine: Machine, cluster: Cluster | None, *, claim: bool
    ) -> Provider | None:
        name = self.reference(machine, cluster)
        ns = machine.metadata.namespace or "default"
        try:
            cred = await self.store.get(self.kind, name, ns)
        except NotFound:
            raise InvalidSpecError(
                f"{self.kind.KIND} {ns}/{name} not found", provider=self.provider
            ) from None
        region = getattr(cred.spec, "region", machine.spec.region)
        if region != machine.spec.region:
            raise InvalidSpecError(
                f"{self.kind.KIND} {name} is for region {region}, machine is in "
                f"{machine.spec.region}",
                provider=self.provider,
            )
        digest = hashlib.sha256(msgspec.json.encode(cred.spec)).hexdigest()
        key = (ns, name)
        cached = self._cache.get(key)
        if cached and cached[0] == digest:
            return cached[1]
        if cached:
            await cached[1].close()
        adapter = self.factory(cred)
        self._cache[key] = (digest, adapter)
        return adapter

    async def release(self, machine: Machine) -> None:
        return None

    async def close(self) -> None:
        for _, adapter in self._cache.values():
            await adapter.close()
        self._cache.clear()
