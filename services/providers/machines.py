"""The Machine reconciler every provider service runs, one per provider.

``reconcile`` is a short dispatcher: it skips machines of other regions and of Clusters
using another provider, then runs ``reconcile_delete``, ``reconcile_reboot`` (a power cycle
a MachineHealthCheck asked for, ``reboot.py``) or ``reconcile_normal`` inside one status
write. The normal path is an ordered list of steps (Create, Inspect, PowerOn,
Addresses), each safe to repeat; the delete path waits for LCM's drain (when LCM holds a
finalizer), then powers off and deletes the node, frees what was claimed, and only then
removes the provider's finalizer.

Provider errors become ``ProviderReady=False`` with the provider's reason and a failed
step, and the machine is retried with exponential backoff (longer for errors a person
must fix, such as bad credentials, since fixing a credential sends no Machine event).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import msgspec

from services.providers import reboot
from services.providers import steps as S
from services.providers.agent_bootstrap import AgentBootstrap
from services.providers.contract import (
    DEPROVISION_STEPS,
    NODE_STEPS,
    STEP_ADDRESSES,
    STEP_CREATE,
    STEP_DELETE,
    STEP_INSPECT,
    STEP_POWER_OFF,
    STEP_POWER_ON,
    NodeRequest,
    NodeStatus,
    Provider,
)
from services.providers.errors import (
    InvalidSpecError,
    NotFoundError,
    ProviderError,
    ProviderTimeout,
)
from services.providers.targets import TARGET_ANNOTATION, CredentialTargets, Targets
from shared.models import Cluster, Machine, MachineStatus
from shared.models.kinds import ProviderName
from shared.runtime import (
    Request,
    Result,
    TransientError,
    remove_finalizer,
    status_writer,
)
from shared.runtime import conditions as cond
from shared.store import NotFound, Store

log = logging.getLogger(__name__)

LCM_FINALIZER = "lcm.kaas.containercloud.dev/machine"
DRAINED = "Drained"


def finalizer_for(provider: str) -> str:
    return f"providers.kaas.containercloud.dev/{provider}"


def _still_reachable(st: MachineStatus, node: NodeStatus) -> list[str]:
    """The addresses recorded when the node was made reachable, while it still has them all.

    Making a node reachable is a provider call of its own (on OpenStack a port and floating
    IP lookup after the server's); every pass over a running node - each resync, each change
    another controller writes to the Machine - made it again for nothing. A node that lost
    one (a floating IP deleted behind our back) is made reachable again.
    """
    done = S.get_step(st, STEP_ADDRESSES)
    if done is None or done.state != "Done" or not st.addresses:
        return []
    have = set(node.addresses)
    return list(st.addresses) if all(a in have for a in st.addresses) else []


SETTLED_MARGIN = 0.1  # a pass this close to the node's resync is the resync
_enc = msgspec.json.Encoder()


def _inputs(machine: Machine, cluster: Cluster) -> bytes:
    """What a pass over a running node reads: the Machine's metadata and spec (by its
    generation), the status fields a provider writes, and the Cluster. Not what LCM
    mirrors onto the Machine (lcmPhase, nodeName, LCMReady, maintenance, the Ready summary)."""
    md, st = machine.metadata, machine.status
    return _enc.encode((
        md.uid, md.generation, md.deletion_timestamp, md.finalizers, md.labels, md.annotations,
        st.phase, st.observed_generation, st.provider_id, st.addresses, st.provider_steps,
        cond.get(st, S.PROVIDER_READY),
        cluster.metadata.uid, cluster.metadata.generation, cluster.metadata.annotations,
    ))


@dataclass(frozen=True)
class _Settled:
    """A pass left the node running: what it read, and when the node's resync is due."""

    inputs: bytes
    due: float  # time.monotonic()


class MachineReconciler:
    def __init__(
        self,
        store: Store,
        provider: ProviderName,
        targets: Targets,
        *,
        region: str | None = None,
        poll_interval: float = 2.0,
        provision_timeout: float = 900.0,
        shutdown_timeout: float = reboot.SHUTDOWN_TIMEOUT,
        resync_interval: float = 600.0,
        backoff: S.Backoff | None = None,
        bootstrap: AgentBootstrap | None = None,
    ) -> None:
        self.store = store
        self.bootstrap = bootstrap  # cloud-init for the node's agent, where nodes take it
        self.provider = provider
        self.targets = targets
        self.region = region
        self.poll_interval = poll_interval
        self.provision_timeout = provision_timeout
        self.shutdown_timeout = shutdown_timeout
        self.resync_interval = resync_interval
        self.backoff = backoff or S.Backoff()
        self.finalizer = finalizer_for(provider)
        # A running node needs a pass when something it reads changed or its resync is due;
        # every write LCM mirrors onto the Machine woke the controller too, and each pass
        # is calls to the provider (three on OpenStack) that can only find what the last one
        # did. As controller-runtime's predicates drop status-only updates.
        self._settled: dict[tuple[str | None, str], _Settled] = {}  # by namespace, name

    # --- dispatch -------------------------------------------------------------------------

    async def reconcile(self, req: Request) -> Result | None:
        key = (req.namespace, req.name)
        try:
            machine = await self.store.get(Machine, req.name, req.namespace)
        except NotFound:
            self._settled.pop(key, None)
            raise
        # Kept only by a skipped pass or one that leaves the node running.
        settled = self._settled.pop(key, None)
        if self.region is not None and machine.spec.region != self.region:
            return None
        cluster = await self._cluster(machine)
        if not self._mine(machine, cluster):
            return None
        if machine.deleting:
            if self.finalizer not in machine.metadata.finalizers:
                return None
            async with status_writer(self.store, machine, derive=cond.summarize_machine) as m:
                return await self._guarded(m, self.reconcile_delete, m, cluster)
        if cluster is None:
            async with status_writer(self.store, machine, derive=cond.summarize_machine) as m:
                cond.mark_false(m.status, S.PROVIDER_READY, "ClusterNotFound",
                                f"cluster {m.spec.cluster!r} not found", "Warning")
            return Result(requeue_after=self.backoff.next(machine.metadata.uid or req.name))
        machine = await self._ensure_metadata(machine, cluster)
        if settled is not None:
            left = settled.due - time.monotonic()
            if left > SETTLED_MARGIN and settled.inputs == _inputs(machine, cluster):
                self._settled[key] = settled
                return Result(requeue_after=left)
        async with status_writer(self.store, machine, derive=cond.summarize_machine) as m:
            if reboot.pending(m):
                return await self._guarded(m, self.reconcile_reboot, m, cluster)
            result = await self._guarded(m, self.reconcile_normal, m, cluster)
        if m.status.phase == "Running" and result is not None and result.requeue_after:
            self._settled[key] = _Settled(_inputs(m, cluster),
                                          time.monotonic() + result.requeue_after)
        return result

    async def _cluster(self, machine: Machine) -> Cluster | None:
        try:
            return await self.store.get(Cluster, machine.spec.cluster, machine.metadata.namespace)
        except NotFound:
            return None

    def _mine(self, machine: Machine, cluster: Cluster | None) -> bool:
        if cluster is not None:
            return cluster.spec.provider == self.provider
        # Cluster gone (or not yet there): the provider section of the spec decides.
        return getattr(machine.spec, self.provider, None) is not None

    async def _ensure_metadata(self, machine: Machine, cluster: Cluster) -> Machine:
        """Add the finalizer (first, before any node exists) and record the target."""
        md = machine.metadata
        changed = False
        if self.finalizer not in md.finalizers:
            md.finalizers.append(self.finalizer)
            changed = True
        if isinstance(self.targets, CredentialTargets) and TARGET_ANNOTATION not in md.annotations:
            md.annotations[TARGET_ANNOTATION] = self.targets.reference(machine, cluster)
            changed = True
        return await self.store.update(machine) if changed else machine

    async def _guarded(self, machine: Machine, fn, *args) -> Result | None:  # noqa: ANN001
        key = machine.metadata.uid or machine.metadata.name
        try:
            result = await fn(*args)
        except ProviderError as e:
            S.mark_failed(machine.status, e)
            order = DEPROVISION_STEPS if machine.deleting else NODE_STEPS
            running = next(
                (s.name for s in machine.status.provider_steps if s.state != "Done"), order[0]
            )
            S.set_step(machine.status, running, "Failed", str(e), order=order)
            if not machine.deleting and not reboot.pending(machine):  # a live node stays so
                machine.status.phase = "Failed" if not e.transient else "Provisioning"
            delay = self.backoff.next(key, e)
            log.warning("machine %s/%s: %s: %s (retry in %.1fs)", machine.metadata.namespace,
                        machine.metadata.name, e.reason, e, delay)
            raise TransientError(f"{e.reason}: {e}", delay=delay) from None
        self.backoff.reset(key)
        return result

    # --- provisioning -----------------------------------------------------------------------

    async def reconcile_normal(self, machine: Machine, cluster: Cluster) -> Result:
        st = machine.status
        S.reset_steps(st, NODE_STEPS)
        st.observed_generation = machine.metadata.generation
        provider = await self._provider(machine, cluster, claim=True)
        assert provider is not None
        user_data = self.bootstrap.user_data(machine) if self.bootstrap else ""
        req = NodeRequest.from_machine(machine, self.provider, user_data=user_data)

        def step(name: str, state: str, message: str = "") -> None:
            S.set_step(st, name, state, message, order=NODE_STEPS)

        if st.phase in ("", "Failed"):
            st.phase = "Provisioning"
        if not cond.is_true(st, S.PROVIDER_READY):
            cond.mark_false(st, S.PROVIDER_READY, S.REASON_PROVISIONING,
                            "provisioning the node", "Info")

        ref = await provider.create(req)
        step(STEP_CREATE, "Done", f"node {ref.name}")
        st.provider_id = ref.provider_id

        inspected = S.get_step(st, STEP_INSPECT)
        if inspected is None or inspected.state != "Done":
            info = await provider.inspect(ref)
            step(STEP_INSPECT, "Done",
                 f"{info.cpus} CPUs, {info.memory_mib} MiB, NICs {', '.join(info.nics) or '-'}")

        node = await provider.status(ref)
        if node.phase == "Failed":
            raise ProviderError(node.message or "node failed", code="Failed",
                                provider=self.provider)
        if node.power_state != "On":
            await provider.power(ref, on=True)
        if not node.running:
            step(STEP_POWER_ON, "InProgress", f"node is {node.phase}, power {node.power_state}")
            self._check_timeout(st, STEP_POWER_ON)
            return Result(requeue_after=self.poll_interval)
        step(STEP_POWER_ON, "Done", "power on")

        addresses = _still_reachable(st, node) or await provider.addresses(ref)
        if not addresses:
            step(STEP_ADDRESSES, "InProgress", "waiting for the node's addresses")
            self._check_timeout(st, STEP_ADDRESSES)
            return Result(requeue_after=self.poll_interval)
        step(STEP_ADDRESSES, "Done", ", ".join(addresses))
        st.addresses = addresses
        st.node_name = st.node_name or machine.metadata.name
        st.phase = "Running"
        cond.mark_true(st, S.PROVIDER_READY, S.REASON_RUNNING, f"node {ref.name} is running")
        # Every running node re-checked on one fixed period is a region-wide wave of provider
        # calls, and a cost per second that grows with the fleet: spread it (+-20%).
        return Result(requeue_after=self.resync_interval * random.uniform(0.8, 1.2))

    async def reconcile_reboot(self, machine: Machine, cluster: Cluster) -> Result:
        """Power cycle the node at LCM's request (``reboot.py``); the normal path resumes
        once it is done."""
        provider = await self._provider(machine, cluster, claim=False)
        return await reboot.power_cycle(
            self.store, machine, provider, NodeRequest.from_machine(machine, self.provider),
            poll_interval=self.poll_interval, timeout=self.provision_timeout,
            shutdown_timeout=self.shutdown_timeout)

    def _check_timeout(self, st, name: str) -> None:  # noqa: ANN001
        """A step in progress longer than ``provision_timeout`` fails with what it awaited."""
        step = S.get_step(st, name)
        waited = S.seconds_in_state(step)
        if waited > self.provision_timeout:
            awaited = f": {step.message}" if step is not None and step.message else ""
            raise ProviderTimeout(
                f"step {name} not done after {int(waited)}s{awaited}", provider=self.provider
            )

    async def _provider(self, machine: Machine, cluster: Cluster | None, *, claim: bool
                        ) -> Provider | None:
        return await self.targets.provider_for(machine, cluster, claim=claim)

    # --- deprovisioning ---------------------------------------------------------------------

    async def reconcile_delete(self, machine: Machine, cluster: Cluster | None) -> Result | None:
        st = machine.status
        S.reset_steps(st, DEPROVISION_STEPS)
        st.phase = "Deleting"

        def step(name: str, state: str, message: str = "") -> None:
            S.set_step(st, name, state, message, order=DEPROVISION_STEPS)

        if LCM_FINALIZER in machine.metadata.finalizers and not cond.is_true(st, DRAINED):
            step(STEP_POWER_OFF, "Pending", "waiting for LCM to drain the node")
            cond.mark_false(st, S.PROVIDER_READY, S.REASON_WAITING_DRAIN,
                            "waiting for LCM to drain the node", "Info")
            return Result(requeue_after=self.poll_interval)

        cond.mark_false(st, S.PROVIDER_READY, S.REASON_DEPROVISIONING, "deleting the node", "Info")
        created = any(s.name == STEP_CREATE and s.state == "Done"
                      for s in st.provider_steps) or bool(st.provider_id)
        try:
            provider = await self._provider(machine, cluster, claim=False)
            ref = await provider.find(NodeRequest.from_machine(machine, self.provider)) \
                if provider is not None else None
        except NotFoundError:
            ref = None
        except InvalidSpecError:
            if created:
                raise
            ref = None  # the spec never worked: nothing was made
        if ref is not None:
            assert provider is not None
            step(STEP_POWER_OFF, "InProgress", f"deleting node {ref.name}")
            if not await provider.delete(ref):
                return Result(requeue_after=self.poll_interval)
        step(STEP_POWER_OFF, "Done", "powered off")
        step(STEP_DELETE, "Done", "node deleted" if ref else "no node to delete")
        await self.targets.release(machine)
        st.addresses = []
        remaining = await remove_finalizer(self.store, machine, self.finalizer)
        if remaining is not None:  # other finalizers left: the status write needs the new rv
            machine.metadata = remaining.metadata
        log.info("machine %s/%s: node released", machine.metadata.namespace, machine.metadata.name)
        return None
