"""vSphere provider: VM clones from templates through pyVmomi."""

from services.providers.vsphere.adapter import VsphereProvider

__all__ = ["VsphereProvider"]
