"""Reboots, the provider's half: power cycle a node LCM asked for.

LCM asks - for a MachineHealthCheck (``services.lcm.healthcheck``) or a graceful reboot, once
the node is drained (``services.lcm.gracefulreboot``) - by writing a fresh id in the
Machine's ``reboot-request`` annotation (a graceful reboot also in ``reboot-graceful``: the
node's OS is asked to shut down, and the power is cut only if it has not within the shutdown
timeout). The provider powers the node off, waits (requeued, never asleep) until the
provider reports it off, marks that midpoint with the id in ``reboot-powered-off``, powers
it on, waits until it runs, and answers with the id in ``reboot-done``. Each mark is a
metadata write of the id it concerns, so the node is cycled
once per id however often the Machine is delivered and whenever the service restarts: a
restart before the midpoint asks for power off again (already off: nothing to do), one
after it only powers on. A step that does not finish within ``timeout`` fails like a
provisioning step (``ProviderTimeout``, retried with backoff).
"""

from __future__ import annotations

import logging

from services.providers import steps as S
from services.providers.contract import NODE_STEPS, STEP_REBOOT, NodeRequest, Provider
from services.providers.errors import ProviderTimeout
from shared.models import (
    REBOOT_DONE_ANNOTATION,
    REBOOT_GRACEFUL_ANNOTATION,
    REBOOT_OFF_ANNOTATION,
    REBOOT_REQUEST_ANNOTATION,
    Machine,
    MachineStatus,
    copy,
)
from shared.runtime import Result, recorder
from shared.runtime import conditions as cond
from shared.store import Conflict, Store

log = logging.getLogger(__name__)

REBOOTING = "Rebooting"
RETRIES = 8
# How long a graceful reboot waits for the OS to shut down before cutting the power.
SHUTDOWN_TIMEOUT = 300.0


def pending(machine: Machine) -> str:
    """The id of a reboot asked for and not done yet ("" if none)."""
    ann = machine.metadata.annotations
    request = ann.get(REBOOT_REQUEST_ANNOTATION, "")
    return request if request and ann.get(REBOOT_DONE_ANNOTATION) != request else ""


async def power_cycle(store: Store, machine: Machine, provider: Provider | None,
                      node: NodeRequest, *, poll_interval: float, timeout: float,
                      shutdown_timeout: float = SHUTDOWN_TIMEOUT) -> Result:
    """One pass of the reboot ``machine`` asks for; writes its step and ProviderReady into
    ``machine.status`` (the caller's status write) and its marks into the metadata. A
    graceful request has the OS shut down first, and forces the power off only once
    ``shutdown_timeout`` has passed since the reboot began."""
    request = pending(machine)
    graceful = machine.metadata.annotations.get(REBOOT_GRACEFUL_ANNOTATION) == request
    st = machine.status
    why = f"as requested ({request}{', graceful' if graceful else ''})"

    def step(state: str, message: str) -> None:
        S.set_step(st, STEP_REBOOT, state, message, order=NODE_STEPS)

    ref = await provider.find(node) if provider is not None else None
    if ref is None:
        step("Done", f"no node to reboot {why}")
        await _mark(store, machine, {REBOOT_DONE_ANNOTATION: request, REBOOT_OFF_ANNOTATION: None,
                                     REBOOT_GRACEFUL_ANNOTATION: None})
        return Result(requeue_after=poll_interval)
    assert provider is not None
    cond.mark_false(st, S.PROVIDER_READY, REBOOTING, f"rebooting node {ref.name} {why}", "Info")
    now = await provider.status(ref)
    if machine.metadata.annotations.get(REBOOT_OFF_ANNOTATION) != request:
        if now.power_state != "Off":
            began = S.get_step(st, STEP_REBOOT)
            waited = S.seconds_in_state(began) if began and began.state == "InProgress" else 0
            soft = graceful and waited < shutdown_timeout
            if soft:
                step("InProgress", f"shutting node {ref.name} down {why}")
            else:
                late = f" (its OS did not shut down in {int(shutdown_timeout)}s)" \
                    if graceful else ""
                step("InProgress", f"powering node {ref.name} off {why}{late}")
            _check_timeout(st, provider, timeout)
            await provider.power(ref, on=False, graceful=soft)
            return Result(requeue_after=poll_interval)
        await _mark(store, machine, {REBOOT_OFF_ANNOTATION: request})
    if not now.running:
        step("InProgress", f"powering node {ref.name} on {why}")
        _check_timeout(st, provider, timeout)
        if now.power_state != "On":
            await provider.power(ref, on=True)
        return Result(requeue_after=poll_interval)
    await _mark(store, machine, {REBOOT_DONE_ANNOTATION: request, REBOOT_OFF_ANNOTATION: None,
                                 REBOOT_GRACEFUL_ANNOTATION: None})
    message = f"node {ref.name} rebooted {why}"
    step("Done", message)
    cond.mark_true(st, S.PROVIDER_READY, S.REASON_RUNNING, f"node {ref.name} is running")
    if (bound := recorder.current()) is not None:
        bound[0].record(machine, "Normal", "Rebooted", message, controller=bound[1])
    log.info("machine %s/%s: %s", machine.metadata.namespace, machine.metadata.name, message)
    return Result(requeue_after=poll_interval)


def _check_timeout(st: MachineStatus, provider: Provider, timeout: float) -> None:
    step = S.get_step(st, STEP_REBOOT)
    waited = S.seconds_in_state(step)
    if waited > timeout:
        raise ProviderTimeout(f"reboot not done after {int(waited)}s: "
                              f"{step.message if step is not None else ''}",
                              provider=provider.name)


async def _mark(store: Store, machine: Machine, marks: dict[str, str | None]) -> None:
    """Set (or, for None, drop) annotations on the stored Machine, and on ``machine`` as seen
    by the rest of this pass. Its resourceVersion is left as read: the caller's status
    write then merges onto the fresh object instead of overwriting what others wrote."""
    current = copy(machine)
    for attempt in range(RETRIES):
        ann = current.metadata.annotations
        if all(ann.get(k) == v for k, v in marks.items()):
            break
        for k, v in marks.items():
            if v is None:
                ann.pop(k, None)
            else:
                ann[k] = v
        try:
            current = await store.update(current)
            break
        except Conflict:
            if attempt + 1 == RETRIES:
                raise
            current = await store.get(Machine, machine.metadata.name, machine.metadata.namespace)
    machine.metadata.annotations = dict(current.metadata.annotations)
