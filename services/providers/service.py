"""Building a provider service: its Machine controller (and extra controllers) on a Runtime.

Each ``python -m services.providers.<name>`` calls :func:`run` with a function that makes
its ``Targets``; the controllers take only their own region's events (``CCLOUD_REGION``).
``CCLOUD_PROVIDER_POLL_INTERVAL`` and ``CCLOUD_PROVIDER_PROVISION_TIMEOUT`` (seconds) tune
how often a provisioning node is polled and when a step counts as timed out;
``CCLOUD_PROVIDER_RESYNC_INTERVAL`` how often a running node is re-checked at the provider
with no event asking for it (drift: a node removed behind our back);
``CCLOUD_PROVIDER_WORKERS`` how many Machines are reconciled at once. OpenStack,
vSphere and bare-metal nodes get cloud-init that starts their LCM agent
(``agent_bootstrap.py``: ``CCLOUD_AGENT_ENDPOINT`` and ``CCLOUD_LCM_SECRET``).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from services.providers import agent_bootstrap
from services.providers.machines import MachineReconciler
from services.providers.targets import Targets
from shared.models import Machine
from shared.models.kinds import ProviderName
from shared.runtime import Controller
from shared.service import Component, Parts, Runtime, main

# Providers whose nodes take cloud-init user data (agent_bootstrap.py); bare metal hosts
# get it on a config drive (baremetal/configdrive.py), simulated nodes keep it in their
# record, where the local node launcher boots their agents from it.
USER_DATA_PROVIDERS: tuple[ProviderName, ...] = ("openstack", "vsphere", "baremetal",
                                                 "simulated")


def seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise SystemExit(f"invalid {name} {raw!r}: not a number") from None
    if value < 0:
        raise SystemExit(f"invalid {name} {raw!r}: must not be negative")
    return value


def count(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"invalid {name} {raw!r}: must be a whole number of at least 1")
    return int(raw)


class _Closing:
    """Closes the targets' adapters when the leader's controllers stop."""

    def __init__(self, targets: Targets) -> None:
        self.targets = targets

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self.targets.close()


def machine_controller(rt: Runtime, provider: ProviderName, targets: Targets) -> Controller:
    reconciler = MachineReconciler(
        rt.store,
        provider,
        targets,
        region=rt.settings.region,
        poll_interval=seconds("CCLOUD_PROVIDER_POLL_INTERVAL", 2.0),
        provision_timeout=seconds("CCLOUD_PROVIDER_PROVISION_TIMEOUT", 900.0),
        shutdown_timeout=seconds("CCLOUD_PROVIDER_SHUTDOWN_TIMEOUT", 300.0),
        resync_interval=seconds("CCLOUD_PROVIDER_RESYNC_INTERVAL", 600.0),
        bootstrap=agent_bootstrap.from_env(rt.settings.data_dir)
        if provider in USER_DATA_PROVIDERS else None,
    )
    return Controller(
        name=f"provider-{provider}-machine",
        kind=Machine,
        reconciler=reconciler,
        store=rt.store,
        bus=rt.bus,
        region=rt.settings.region,
        workers=count("CCLOUD_PROVIDER_WORKERS", 16),
    )


def run(
    provider: ProviderName,
    make_targets: Callable[[Runtime], Awaitable[Targets]],
    extra: Callable[[Runtime], list[Component]] | None = None,
) -> None:
    async def build(rt: Runtime) -> Parts:
        targets = await make_targets(rt)
        # Started in order, stopped in reverse: the extra parts (a server the nodes use, an
        # inventory) before the Machine controller that relies on them.
        parts = extra(rt) if extra else []
        return Parts(leader=[*parts, machine_controller(rt, provider, targets),
                             _Closing(targets)])

    main(f"provider-{provider}", build)
