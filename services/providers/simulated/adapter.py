"""Simulated provider: same contract as the real ones, no real machines.

Latency is modelled with timestamps rather than sleeps in the provider: a node is
``Provisioning`` until ``provision_seconds`` after create, and a power request lands
``power_seconds`` later, like a BMC. ``api_latency`` delays every call (a slow cloud),
``failure_rate`` makes that fraction of mutating calls fail with a transient error, and
``fail_with`` forces one error kind (credentials, quota, timeout) for tests and demos.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from typing import ClassVar, Literal

import msgspec

from services.providers.contract import Inspection, NodeRef, NodeRequest, NodeStatus
from services.providers.errors import (
    CredentialsError,
    NotFoundError,
    ProviderTimeout,
    ProviderUnavailable,
    QuotaError,
)
from services.providers.simulated.nodes import MemoryNodes, NodeTable, SimNode
from shared.models import SimulatedMachineSpec
from shared.models.kinds import ProviderName

FLAVORS: dict[str, tuple[int, int]] = {
    "small": (2, 4096),
    "medium": (4, 8192),
    "large": (8, 16384),
}


class SimulatedConfig(msgspec.Struct, kw_only=True, frozen=True):
    api_latency: float = 0.0
    provision_seconds: float = 0.0
    power_seconds: float = 0.0
    failure_rate: float = 0.0
    fail_with: Literal["", "credentials", "quota", "timeout", "unavailable"] = ""
    seed: int | None = None
    quota: int | None = None  # max nodes; None = unlimited
    network: str = "10.250"  # first two octets of node addresses
    # Whether a node's OS shuts down when asked (graceful off); False plays a hung OS: only
    # a forced power off turns it off.
    acpi: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        for name in ("api_latency", "provision_seconds", "power_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


NEVER = 1e18  # when a shutdown a hung OS ignores takes effect


def _address(network: str, uid: str) -> str:
    h = hashlib.sha256(uid.encode()).digest()
    return f"{network}.{h[0]}.{max(h[1], 1) % 254 + 1}"


def settle(node: SimNode, now: float) -> SimNode:
    """The node at ``now``: a requested power change whose time has come applied."""
    if node.power_target and now >= node.power_at:
        return msgspec.structs.replace(node, power=node.power_target, power_target="",
                                       graceful=False)
    return node


def phase(node: SimNode, now: float | None = None) -> str:
    """Where the node is at ``now`` (a power change whose time has come applied): its
    provider reports it, and whatever plays the node boots its agent while "Running"."""
    now = time.time() if now is None else now
    if node.deleting_at:
        return "Deleting"
    if now < node.ready_at:
        return "Provisioning"
    return "Running" if settle(node, now).power == "On" else "Stopped"


class SimulatedProvider:
    name: ClassVar[ProviderName] = "simulated"

    def __init__(
        self,
        config: SimulatedConfig | None = None,
        *,
        nodes: NodeTable | None = None,
    ) -> None:
        self.config = config or SimulatedConfig()
        self.nodes = nodes or MemoryNodes()
        self._rng = random.Random(self.config.seed)
        self.calls: dict[str, int] = {}

    # --- behaviour knobs -----------------------------------------------------------------

    async def _call(self, op: str, *, mutating: bool) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        if self.config.api_latency:
            await asyncio.sleep(self.config.api_latency)
        match self.config.fail_with:
            case "credentials":
                raise CredentialsError("simulated: token rejected", code=401, provider=self.name)
            case "quota":
                raise QuotaError("simulated: instance quota exceeded", code=403, provider=self.name)
            case "timeout":
                raise ProviderTimeout(f"simulated: {op} timed out", provider=self.name)
            case "unavailable":
                raise ProviderUnavailable(
                    f"simulated: {op} unavailable", code=503, provider=self.name
                )
        if mutating and self.config.failure_rate and self._rng.random() < self.config.failure_rate:
            raise ProviderUnavailable(
                f"simulated: injected {op} failure", code=503, provider=self.name
            )

    def _ref(self, node: SimNode) -> NodeRef:
        return NodeRef(
            provider=self.name,
            id=node.id,
            name=node.name,
            machine_uid=node.machine_uid,
            provider_id=f"simulated:///{node.id}",
        )

    async def _node(self, ref: NodeRef) -> SimNode:
        node = await self.nodes.get(ref.machine_uid)
        if node is None:
            raise NotFoundError(f"node {ref.name} not found", code=404, provider=self.name)
        return settle(node, time.time())

    # --- contract -------------------------------------------------------------------------

    async def find(self, req: NodeRequest) -> NodeRef | None:
        await self._call("find", mutating=False)
        node = await self.nodes.get(req.machine_uid)
        return self._ref(node) if node else None

    async def create(self, req: NodeRequest) -> NodeRef:
        await self._call("create", mutating=True)
        existing = await self.nodes.get(req.machine_uid)
        if existing:
            return self._ref(existing)
        if self.config.quota is not None and len(await self.nodes.all()) >= self.config.quota:
            raise QuotaError(
                f"simulated: quota of {self.config.quota} nodes reached",
                code=403,
                provider=self.name,
            )
        spec = req.spec if isinstance(req.spec, SimulatedMachineSpec) else SimulatedMachineSpec()
        now = time.time()
        node = SimNode(
            id=hashlib.sha256(req.machine_uid.encode()).hexdigest()[:16],
            name=req.node_name,
            machine_uid=req.machine_uid,
            flavor=spec.flavor,
            created_at=now,
            ready_at=now + self.config.provision_seconds,
            addresses=[_address(self.config.network, req.machine_uid)],
            user_data=req.user_data,
        )
        return self._ref(await self.nodes.create(node))

    async def inspect(self, ref: NodeRef) -> Inspection:
        await self._call("inspect", mutating=False)
        node = await self._node(ref)
        cpus, mem = FLAVORS.get(node.flavor, FLAVORS["small"])
        mac = "52:54:00:" + ":".join(node.id[i : i + 2] for i in (0, 2, 4))
        return Inspection(cpus=cpus, memory_mib=mem, nics=[mac], system_uuid=node.id)

    async def power(self, ref: NodeRef, *, on: bool, graceful: bool = False) -> None:
        await self._call("power", mutating=True)
        node = await self._node(ref)
        want = "On" if on else "Off"
        graceful = graceful and not on
        if node.power == want and not node.power_target:
            return
        if node.power_target == want and (graceful or not node.graceful):
            return  # already heading there (a forced off after a graceful one goes ahead)
        ignored = graceful and not self.config.acpi  # a hung OS: the request goes nowhere
        await self.nodes.put(
            msgspec.structs.replace(
                node, power_target=want, graceful=graceful,
                power_at=NEVER if ignored else time.time() + self.config.power_seconds,
            )
        )

    async def status(self, ref: NodeRef) -> NodeStatus:
        await self._call("status", mutating=False)
        node = await self._node(ref)
        at = phase(node)
        return NodeStatus(
            ref=ref,
            phase=at,
            power_state="On" if node.power == "On" else "Off",
            addresses=list(node.addresses) if at == "Running" else [],
        )

    async def addresses(self, ref: NodeRef) -> list[str]:
        st = await self.status(ref)
        return st.addresses

    async def delete(self, ref: NodeRef) -> bool:
        await self._call("delete", mutating=True)
        node = await self.nodes.get(ref.machine_uid)
        if node is None:
            return True
        await self.nodes.remove(ref.machine_uid)
        return True

    async def close(self) -> None:
        return None
