"""``python -m services.providers.simulated``: the simulated provider of this region.

Nodes live in the JetStream KV bucket ``<prefix>-simulated-nodes``, so a restarted service
finds them. ``CCLOUD_SIMULATED_PROVISION_SECONDS``, ``..._POWER_SECONDS``,
``..._API_LATENCY`` (seconds) and ``..._FAILURE_RATE`` (0-1) shape its behaviour.
"""

from __future__ import annotations

import os

from services.providers.service import run, seconds
from services.providers.simulated.adapter import SimulatedConfig, SimulatedProvider
from services.providers.simulated.nodes import KVNodes, nodes_bucket
from services.providers.targets import SingleTarget, Targets
from shared.service import Runtime


def config() -> SimulatedConfig:
    rate = os.environ.get("CCLOUD_SIMULATED_FAILURE_RATE", "0")
    try:
        return SimulatedConfig(
            provision_seconds=seconds("CCLOUD_SIMULATED_PROVISION_SECONDS", 1.0),
            power_seconds=seconds("CCLOUD_SIMULATED_POWER_SECONDS", 0.5),
            api_latency=seconds("CCLOUD_SIMULATED_API_LATENCY", 0.0),
            failure_rate=float(rate),
        )
    except ValueError as e:
        raise SystemExit(f"invalid simulated provider settings: {e}") from None


async def targets(rt: Runtime) -> Targets:
    nodes = KVNodes(rt.nc, bucket=nodes_bucket(rt.settings.prefix))
    await nodes.start()
    return SingleTarget(SimulatedProvider(config(), nodes=nodes))


if __name__ == "__main__":
    run("simulated", targets)
