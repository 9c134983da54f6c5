"""Which services the local default runs, and the settings each one gets."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    module: str
    env: dict[str, str] = field(default_factory=dict)


# Order matters: started in this order, stopped in reverse.
LOCAL_SERVICES: tuple[ServiceEntry, ...] = (
    ServiceEntry("bridge", "services.bridge"),
    ServiceEntry("release", "services.release"),
    ServiceEntry("lcm", "services.lcm"),
    ServiceEntry("provider-simulated", "services.providers.simulated"),
    ServiceEntry("provider-baremetal", "services.providers.baremetal"),
    ServiceEntry("attach", "services.attach"),
    ServiceEntry("nodes", "services.local.nodes"),
    ServiceEntry("api", "services.api"),
)


def runnable(module: str) -> bool:
    """True when ``python -m module`` would run (a module, or a package with ``__main__``)."""
    try:
        spec = importlib.util.find_spec(module)
        if spec is None:
            return False
        if spec.submodule_search_locations is None:
            return True
        return importlib.util.find_spec(f"{module}.__main__") is not None
    except ModuleNotFoundError:
        return False
