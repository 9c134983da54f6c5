"""OpenStack provider: Nova/Neutron/Glance through openstacksdk."""

from services.providers.openstack.adapter import OpenStackProvider

__all__ = ["OpenStackProvider"]
