"""``python -m services.lcm``: LCM controllers for the region (leader) and the agent endpoint.

Shared settings come from ``CCLOUD_*`` (``shared.config``), LCM's own from ``CCLOUD_LCM_*``
(``services.lcm.config``): endpoint host/port, mirror URL, heartbeat and poll intervals.
"""

from __future__ import annotations

from services.lcm import service
from services.lcm.config import LCMSettings
from shared.service import Parts, Runtime, main


async def build(rt: Runtime) -> Parts:
    settings = LCMSettings.from_env()
    ep = service.endpoint(rt.store, rt.bus, settings, rt.settings.data_dir,
                          region=rt.settings.region)
    ctrls = service.controllers(rt.store, rt.bus, settings, region=rt.settings.region)
    ctrls.append(service.region_controller(rt.store, rt.bus, rt.nc, rt.settings))
    return Parts(always=[ep], leader=list(ctrls))


if __name__ == "__main__":
    main("lcm", build)
