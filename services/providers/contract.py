"""The provider contract: what every infrastructure adapter does for a Machine.

A ``Provider`` is bound to one *target*: a cloud account (``OpenStackCredential``,
``VsphereCredential``), one ``BareMetalHost`` (its BMC), or the simulator's settings. The
provider service builds one per target and drives it through ordered steps:

1. ``create(req)``     request the node; idempotent, keyed by the Machine's uid
2. ``inspect(ref)``    hardware facts (CPUs, memory, NIC MACs, system uuid)
3. ``power(ref, on=True)``
4. ``status(ref)``     phase, power state, addresses, providerID (read only)
5. ``addresses(ref)``  make the node reachable (e.g. a floating IP), report addresses;
                       an empty list means "not yet, ask again"

and on deletion ``delete(ref)`` (power off and release; True once the node is gone).

Events reach the service at least once and a service may be killed at any point, so every
method must be safe to repeat: ``create`` first looks for a node tagged with the Machine's
uid (server metadata, VM extraConfig, the host's consumer) and returns it instead of making
a second one. ``find(req)`` is that lookup on its own.

Blocking SDK calls run in ``asyncio.to_thread``; errors leave an adapter only as
:mod:`services.providers.errors` types.
"""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar, Literal, Protocol, runtime_checkable

from msgspec import Struct, field

from services.providers.errors import (
    CredentialsError,
    InvalidSpecError,
    NoCapacityError,
    NotFoundError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    QuotaError,
)
from shared.models import (
    BareMetalMachineSpec,
    Machine,
    OpenStackMachineSpec,
    SimulatedMachineSpec,
    VsphereMachineSpec,
)
from shared.models.kinds import ProviderName

PowerState = Literal["On", "Off", "Unknown"]
NodePhase = Literal["Provisioning", "Running", "Stopped", "Failed", "Deleting"]
ProviderSpec = (
    OpenStackMachineSpec | VsphereMachineSpec | BareMetalMachineSpec | SimulatedMachineSpec
)

# Metadata key (server metadata, VM extraConfig key suffix) that ties a node to its Machine.
MACHINE_UID_TAG = "ccloud-machine-uid"

# Step names shown in Machine.status.providerSteps, in order.
STEP_CREATE = "Create"
STEP_INSPECT = "Inspect"
STEP_POWER_ON = "PowerOn"
STEP_ADDRESSES = "Addresses"
STEP_POWER_OFF = "PowerOff"
STEP_DELETE = "Delete"
STEP_REBOOT = "Reboot"
PROVISION_STEPS: tuple[str, ...] = (STEP_CREATE, STEP_INSPECT, STEP_POWER_ON, STEP_ADDRESSES)
# A live node's steps: how it was made, then the latest power cycle a health check asked for.
NODE_STEPS: tuple[str, ...] = (*PROVISION_STEPS, STEP_REBOOT)
DEPROVISION_STEPS: tuple[str, ...] = (STEP_POWER_OFF, STEP_DELETE)


class NodeRequest(Struct, frozen=True, kw_only=True):
    """What a provider needs from a Machine; built with :meth:`from_machine`."""

    machine_uid: str
    machine_name: str
    namespace: str
    cluster: str
    region: str
    role: str = "worker"
    spec: ProviderSpec | None = None
    user_data: str = ""

    @property
    def node_name(self) -> str:
        """Name at the provider: unique per Machine uid, readable by people."""
        return f"{self.machine_name}-{self.machine_uid.replace('-', '')[:8]}"

    @classmethod
    def from_machine(
        cls, machine: Machine, provider: ProviderName, *, user_data: str = ""
    ) -> NodeRequest:
        if not machine.metadata.uid:
            raise InvalidSpecError("machine has no uid yet", provider=provider)
        spec = getattr(machine.spec, provider)
        return cls(
            machine_uid=machine.metadata.uid,
            machine_name=machine.metadata.name,
            namespace=machine.metadata.namespace or "default",
            cluster=machine.spec.cluster,
            region=machine.spec.region,
            role=machine.spec.role,
            spec=spec,
            user_data=user_data,
        )


class NodeRef(Struct, frozen=True, kw_only=True):
    """A node at a provider. ``id`` is native (server uuid, VM moref, host name)."""

    provider: ProviderName
    id: str
    name: str
    machine_uid: str
    provider_id: str  # Kubernetes providerID form, e.g. "openstack:///<uuid>"


class Inspection(Struct, frozen=True, kw_only=True):
    cpus: int = 0
    memory_mib: int = 0
    nics: list[str] = field(default_factory=list)  # MAC addresses, lower case
    system_uuid: str = ""
    details: dict[str, str] = field(default_factory=dict)


class NodeStatus(Struct, frozen=True, kw_only=True):
    ref: NodeRef
    phase: NodePhase
    power_state: PowerState = "Unknown"
    addresses: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def provider_id(self) -> str:
        return self.ref.provider_id

    @property
    def running(self) -> bool:
        return self.phase == "Running" and self.power_state == "On"


@runtime_checkable
class Provider(Protocol):
    """One adapter bound to one target; see the module docstring for the step order."""

    name: ClassVar[ProviderName]

    async def find(self, req: NodeRequest) -> NodeRef | None:
        """The node made for ``req.machine_uid``, or None."""
        ...

    async def create(self, req: NodeRequest) -> NodeRef:
        """Find-or-create the node for ``req``; never makes a second one for the same uid."""
        ...

    async def inspect(self, ref: NodeRef) -> Inspection: ...

    async def power(self, ref: NodeRef, *, on: bool, graceful: bool = False) -> None:
        """Request a power state; returns once requested (poll ``status`` for the result).
        ``graceful`` (off only): ask the node's OS to shut down rather than cut its power;
        a provider whose off is always that (or cannot ask) does what it always does."""
        ...

    async def status(self, ref: NodeRef) -> NodeStatus:
        """Read-only view; raises NotFoundError once the node is gone."""
        ...

    async def addresses(self, ref: NodeRef) -> list[str]:
        """Make the node reachable if the provider needs a step for it; [] means not yet."""
        ...

    async def delete(self, ref: NodeRef) -> bool:
        """Power off and release the node; True once it is gone (safe to repeat)."""
        ...

    async def close(self) -> None: ...


class BlockingProvider:
    """Base of adapters over blocking SDKs (openstacksdk, pyvmomi): each contract call runs
    its synchronous twin (``_find``, ``_create``, ...) in a worker thread, so a slow cloud
    never blocks the event loop."""

    def _find(self, req: NodeRequest) -> NodeRef | None:
        raise NotImplementedError

    def _create(self, req: NodeRequest) -> NodeRef:
        raise NotImplementedError

    def _inspect(self, ref: NodeRef) -> Inspection:
        raise NotImplementedError

    def _power(self, ref: NodeRef, on: bool, graceful: bool = False) -> None:
        raise NotImplementedError

    def _status(self, ref: NodeRef) -> NodeStatus:
        raise NotImplementedError

    def _addresses(self, ref: NodeRef) -> list[str]:
        return self._status(ref).addresses

    def _delete(self, ref: NodeRef) -> bool:
        raise NotImplementedError

    async def find(self, req: NodeRequest) -> NodeRef | None:
        return await asyncio.to_thread(self._find, req)

    async def create(self, req: NodeRequest) -> NodeRef:
        return await asyncio.to_thread(self._create, req)

    async def inspect(self, ref: NodeRef) -> Inspection:
        return await asyncio.to_thread(self._inspect, ref)

    async def power(self, ref: NodeRef, *, on: bool, graceful: bool = False) -> None:
        await asyncio.to_thread(self._power, ref, on, graceful)

    async def status(self, ref: NodeRef) -> NodeStatus:
        return await asyncio.to_thread(self._status, ref)

    async def addresses(self, ref: NodeRef) -> list[str]:
        return await asyncio.to_thread(self._addresses, ref)

    async def delete(self, ref: NodeRef) -> bool:
        return await asyncio.to_thread(self._delete, ref)


async def wait_for(
    provider: Provider,
    ref: NodeRef,
    *,
    phase: NodePhase | None = None,
    power_state: PowerState | None = None,
    timeout: float = 60.0,
    interval: float = 0.5,
) -> NodeStatus:
    """Poll ``status`` until it shows ``phase``/``power_state``; ProviderTimeout otherwise."""
    deadline = time.monotonic() + timeout
    last: NodeStatus | None = None
    while True:
        last = await provider.status(ref)
        if last.phase == "Failed" and phase != "Failed":
            raise ProviderError(
                last.message or "node failed", provider=provider.name, code="Failed"
            )
        if (phase is None or last.phase == phase) and (
            power_state is None or last.power_state == power_state
        ):
            return last
        if time.monotonic() > deadline:
            want = " ".join(x for x in (phase, power_state) if x)
            raise ProviderTimeout(
                f"node {ref.name} not {want} after {timeout:.0f}s "
                f"(phase {last.phase}, power {last.power_state})",
                provider=provider.name,
            )
        await asyncio.sleep(interval)


__all__ = [
    "CredentialsError",
    "DEPROVISION_STEPS",
    "Inspection",
    "InvalidSpecError",
    "MACHINE_UID_TAG",
    "NODE_STEPS",
    "NoCapacityError",
    "NodePhase",
    "NodeRef",
    "NodeRequest",
    "NodeStatus",
    "NotFoundError",
    "PROVISION_STEPS",
    "PowerState",
    "Provider",
    "ProviderError",
    "ProviderSpec",
    "ProviderTimeout",
    "ProviderUnavailable",
    "QuotaError",
    "wait_for",
] + [n for n in list(globals()) if n.startswith("STEP_")]
