"""Resource models: metadata, kinds, registry and codec."""

from shared.models.kinds import *  # noqa: F403
from shared.models.kinds import ALL_KINDS
from shared.models.meta import (
    API_VERSION,
    CLUSTER_LABEL,
    DELETE_MACHINE_ANNOTATION,
    GLOBAL_REGION,
    GRACEFUL_REBOOT_ANNOTATION,
    GROUP,
    MACHINE_LABEL,
    POOL_LABEL,
    POOL_TEMPLATE_ANNOTATION,
    PROVIDER_LABEL,
    REBOOT_DONE_ANNOTATION,
    REBOOT_GRACEFUL_ANNOTATION,
    REBOOT_OFF_ANNOTATION,
    REBOOT_REQUEST_ANNOTATION,
    REGION_LABEL,
    TARGET_ANNOTATION,
    VERSION,
    Condition,
    ObjectMeta,
    OwnerReference,
    Resource,
    Status,
    now,
)
from shared.models.registry import (
    BY_KIND,
    BY_PLURAL,
    ValidationError,
    convert,
    copy,
    decode,
    encode,
    kind_of,
    redact,
    to_dict,
)

__all__ = [
    "ALL_KINDS", "API_VERSION", "BY_KIND", "BY_PLURAL", "CLUSTER_LABEL", "Condition",
    "DELETE_MACHINE_ANNOTATION", "POOL_LABEL", "POOL_TEMPLATE_ANNOTATION",
    "GLOBAL_REGION", "GRACEFUL_REBOOT_ANNOTATION", "GROUP", "MACHINE_LABEL", "ObjectMeta",
    "OwnerReference", "PROVIDER_LABEL",
    "REBOOT_DONE_ANNOTATION", "REBOOT_GRACEFUL_ANNOTATION", "REBOOT_OFF_ANNOTATION",
    "REBOOT_REQUEST_ANNOTATION",
    "REGION_LABEL", "TARGET_ANNOTATION",
    "Resource", "Status", "VERSION", "ValidationError", "convert", "copy", "decode", "encode",
    "kind_of", "now", "redact", "to_dict",
]
