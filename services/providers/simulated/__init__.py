"""Simulated provider: the local default and the scale-test workhorse (no real machines)."""

from services.providers.simulated.adapter import SimulatedConfig, SimulatedProvider

__all__ = ["SimulatedConfig", "SimulatedProvider"]
