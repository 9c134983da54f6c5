"""Bare-metal provider: BareMetalHost inventory driven over Redfish (sushy)."""

from services.providers.baremetal.adapter import BareMetalProvider, image_url
from services.providers.baremetal.bmc import BMC, BMCAddress

__all__ = ["BMC", "BMCAddress", "BareMetalProvider", "image_url"]
