"""Whether a Machine's provider sections fit its cluster's provider.

One judgement for the gateway's admission (a Machine, a MachinePool's template) and for
the pool controller (a template written straight to the store): a section of another
provider would be ignored rather than refused, and a provider whose section has required
fields (OpenStack's flavor, image and network...) cannot make a node without it.
"""

from __future__ import annotations

from typing import get_args

import msgspec

from shared.models.kinds import MachineSpec, MachineTemplateSpec, ProviderName

PROVIDERS: tuple[str, ...] = get_args(ProviderName)


def needs_section(provider: str) -> bool:
    """Whether a Machine of ``provider`` must say something, or may leave its section out
    for the defaults."""
    section = next(f for f in msgspec.structs.fields(MachineSpec) if f.name == provider)
    kinds = [t for t in get_args(section.type) if t is not type(None)]
    return any(f.required for t in kinds for f in msgspec.structs.fields(t))


def misfit(spec: MachineSpec | MachineTemplateSpec, provider: str,
           prefix: str = "spec.") -> tuple[str, str] | None:
    """The field that does not fit ``provider`` and why (``prefix``: where ``spec`` sits in
    the object written), or None."""
    for other in PROVIDERS:
        if other != provider and getattr(spec, other) is not None:
            return (f"{prefix}{other}",
                    f"uses provider {provider}: give {prefix}{provider}, not {prefix}{other}")
    if getattr(spec, provider) is None and needs_section(provider):
        return f"{prefix}{provider}", f"uses provider {provider}: {prefix}{provider} is required"
    return None
