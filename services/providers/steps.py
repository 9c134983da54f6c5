"""Machine status bookkeeping for provider services: steps, conditions, backoff.

``status.providerSteps`` lists the provider's steps in order with their state, so a user
sees where provisioning is (or what failed and why). ``ProviderReady`` carries the
provider's reason (``InvalidCredentials``, ``QuotaExceeded``, ``ProviderTimeout``, ...).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from services.providers.errors import ProviderError
from shared.models import MachineStatus, ProviderStep, Status, now
from shared.runtime import conditions as cond

PROVIDER_READY = cond.PROVIDER_READY
REASON_PROVISIONING = "Provisioning"
REASON_DEPROVISIONING = "Deprovisioning"
REASON_RUNNING = "NodeRunning"
REASON_WAITING_DRAIN = "WaitingForDrain"


def get_step(st: MachineStatus, name: str) -> ProviderStep | None:
    return next((s for s in st.provider_steps if s.name == name), None)


def set_step(
    st: MachineStatus, name: str, state: str, message: str = "", *, order: tuple[str, ...]
) -> None:
    """Set one step; its time changes only when its state does. Steps stay in ``order``."""
    old = get_step(st, name)
    time = old.time if old is not None and old.state == state else now()
    new = ProviderStep(name=name, state=state, message=message, time=time)  # type: ignore[arg-type]
    steps = {s.name: s for s in st.provider_steps if s.name in order}
    steps[name] = new
    st.provider_steps = [steps[n] for n in order if n in steps]


def reset_steps(st: MachineStatus, order: tuple[str, ...]) -> None:
    """Switch the step list to another sequence (provisioning -> deprovisioning)."""
    if [s.name for s in st.provider_steps] and not all(s.name in order for s in st.provider_steps):
        st.provider_steps = []


def seconds_in_state(step: ProviderStep | None) -> float:
    if step is None or not step.time:
        return 0.0
    then = dt.datetime.strptime(step.time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return (dt.datetime.now(dt.UTC) - then).total_seconds()


def mark_failed(st: Status, err: ProviderError, type_: str = PROVIDER_READY) -> None:
    """The provider's error as a False condition: a Warning while retrying can succeed on
    its own, an Error while a person must act."""
    severity = "Warning" if err.transient else "Error"
    cond.mark_false(st, type_, err.reason, str(err), severity)


@dataclass
class Backoff:
    """Per-object exponential backoff; a provider's own ``retry_after`` wins when longer."""

    initial: float = 1.0
    cap: float = 120.0
    _failures: dict[str, int] = field(default_factory=dict)

    def next(self, key: str, err: ProviderError | None = None) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = min(self.cap, self.initial * (2**n))
        if err is not None and err.retry_after:
            delay = max(delay, min(err.retry_after, self.cap))
        return delay

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)
