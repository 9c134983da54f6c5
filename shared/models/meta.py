"""Kubernetes-shaped object metadata, conditions and the base every resource kind extends.

Field names are snake_case in Python and camelCase on the wire (``rename="camel"``), so
objects round-trip through the Kubernetes API and our own store unchanged.
"""

from __future__ import annotations

import time
from typing import Annotated, ClassVar, Literal

import msgspec
from msgspec import Meta, Struct, field

GROUP = "kaas.containercloud.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

REGION_LABEL = f"{GROUP}/region"
PROVIDER_LABEL = f"{GROUP}/provider"
CLUSTER_LABEL = f"{GROUP}/cluster"
# On a BareMetalHost: the name of the Machine that claimed it (spec.consumer holds its uid).
MACHINE_LABEL = f"{GROUP}/machine"
# On a Machine of a cloud provider: the credential its node was made with, recorded on first
# use so the node can be deleted with it after the Cluster is gone.
TARGET_ANNOTATION = "providers.kaas.containercloud.dev/target"
# On a Machine: LCM (a MachineHealthCheck, a graceful reboot) asks its provider to power cycle
# the node (the value is the request's id); the provider answers with the same id in
# REBOOT_DONE once the node is back on, and marks the midpoint (powered off) in REBOOT_OFF.
# The ids are the state: a request is pending while REQUEST differs from DONE, whoever
# restarts in between.
REBOOT_REQUEST_ANNOTATION = f"{GROUP}/reboot-request"
REBOOT_OFF_ANNOTATION = f"{GROUP}/reboot-powered-off"
REBOOT_DONE_ANNOTATION = f"{GROUP}/reboot-done"
# Beside a reboot request (same id): power the node off by asking its OS to shut down (ACPI,
# a Redfish GracefulShutdown), forcing it only if the OS has not within the provider's
# shutdown timeout. A graceful reboot asks so; a health check's node is hung, so never.
REBOOT_GRACEFUL_ANNOTATION = f"{GROUP}/reboot-graceful"
# On an LCMMachine: the GracefulRebootRequest (its uid) that cordoned the node to reboot it;
# the cluster's rollout leaves such a node to it (no upgrade, no uncordon) until it is gone.
GRACEFUL_REBOOT_ANNOTATION = f"{GROUP}/graceful-reboot"
# On a Machine a MachinePool made: the pool's name (its replicas are the Machines with it), the
# hash of the pool's template it was made from, and - set by a user - the mark that picks
# it first when the pool scales down (Cluster API's delete-machine annotation).
POOL_LABEL = f"{GROUP}/machine-pool"
POOL_TEMPLATE_ANNOTATION = f"{GROUP}/machine-pool-template"
DELETE_MACHINE_ANNOTATION = f"{GROUP}/delete-machine"
GLOBAL_REGION = "global"

# RFC 1123 subdomain-ish names, as Kubernetes requires for object names.
Name = Annotated[str, Meta(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", max_length=253)]
DNSLabel = Annotated[str, Meta(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length=63)]
NonNegative = Annotated[int, Meta(ge=0)]


_last_second: tuple[int, str] = (-1, "")


def now() -> str:
    """RFC 3339 UTC timestamp with seconds precision, as Kubernetes writes them.

    Formatted once per second: every write stamps several fields (and the gateway an audit
    line), and strftime was a few percent of a busy process's CPU."""
    global _last_second
    second = int(time.time())
    if second != _last_second[0]:
        _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _last_second[1]


class Wire(Struct, kw_only=True, rename="camel", omit_defaults=True, forbid_unknown_fields=True,
           gc=False):
    """Base of every wire struct: camelCase keys, defaults omitted, typos rejected.

    Not tracked by the cyclic garbage collector (``gc=False``): plain data never refers
    back to itself, and a service's caches hold hundreds of thousands of these, which
    every full collection would otherwise walk (tens of ms of pause at 10k objects)."""


class OwnerReference(Wire, kw_only=True):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool = False
    block_owner_deletion: bool = False


class ObjectMeta(Wire, kw_only=True):
    name: Name
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    finalizers: list[str] = field(default_factory=list)
    owner_references: list[OwnerReference] = field(default_factory=list)
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None


ConditionStatus = Literal["True", "False", "Unknown"]
Severity = Literal["", "Info", "Warning", "Error"]


class Condition(Wire, kw_only=True):
    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    severity: Severity = ""
    last_transition_time: str = ""


class Status(Wire, kw_only=True):
    """Common status fields; kinds extend it with their own."""

    phase: str = ""
    observed_generation: int = 0
    conditions: list[Condition] = field(default_factory=list)


class Resource(Struct, kw_only=True, rename="camel", forbid_unknown_fields=True, gc=False):
    """Base of every kind. Subclasses set ``spec``/``status`` types and the class vars
    (untracked by the cyclic GC, as ``Wire``)."""

    api_version: str = API_VERSION
    kind: str = ""
    metadata: ObjectMeta

    KIND: ClassVar[str] = ""
    PLURAL: ClassVar[str] = ""
    NAMESPACED: ClassVar[bool] = True
    # Fields in spec that carry secrets: write-only through the API, never logged.
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ()
    # Secret field -> spec field naming a credential object that replaces it: a write
    # setting the reference does not keep the stored secret (switching to a reference).
    SECRET_REFERENCES: ClassVar[dict[str, str]] = {}
    # What a controller writes into this kind's status, for tables (the CLI, the CRDs'
    # printer columns): a ``phase``, and a ``Ready`` condition. A kind with neither (a
    # release, a key) shows no PHASE/READY column rather than a "<none>"/"Unknown" forever.
    HAS_PHASE: ClassVar[bool] = False
    HAS_READY: ClassVar[bool] = False
    # What controllers write into a kind users make, besides status and finalizers: spec
    # fields (attribute names), label keys, annotation keys. They are the controllers' (in a
    # split deployment the region's): the region link takes the region's values
    # (``services/regional/merge.py``), and a user's update through the gateway keeps the
    # stored ones unless it changes one explicitly, which is refused (``services/api``).
    CONTROLLER_SPEC: ClassVar[frozenset[str]] = frozenset()
    CONTROLLER_LABELS: ClassVar[frozenset[str]] = frozenset()
    CONTROLLER_ANNOTATIONS: ClassVar[frozenset[str]] = frozenset()
    # Served with Kubernetes' scale subresource (``<plural>/<name>/scale``, an autoscaling/v1
    # Scale; the CRD's ``subresources.scale``): the kind has ``spec.replicas`` (an int),
    # ``status.replicas`` and ``status.selector`` (the label selector of what it keeps).
    SCALE: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not self.kind:
            self.kind = self.KIND
        elif self.KIND and self.kind != self.KIND:
            raise ValueError(f"kind must be {self.KIND!r}, got {self.kind!r}")
        if self.api_version != API_VERSION:
            raise ValueError(f"apiVersion must be {API_VERSION!r}, got {self.api_version!r}")

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str | None:
        return self.metadata.namespace

    @property
    def deleting(self) -> bool:
        return self.metadata.deletion_timestamp is not None

    def region(self) -> str:
        """The region whose bus subjects carry this object's events."""
        spec_region = getattr(getattr(self, "spec", None), "region", None)
        return spec_region or self.metadata.labels.get(REGION_LABEL) or GLOBAL_REGION

    def owner_ref(self, *, controller: bool = True) -> OwnerReference:
        assert self.metadata.uid, "owner must be stored before it can own"
        return OwnerReference(
            api_version=self.api_version,
            kind=self.kind,
            name=self.metadata.name,
            uid=self.metadata.uid,
            controller=controller,
            block_owner_deletion=True,
        )


def to_builtins(obj: Struct) -> dict:
    return msgspec.to_builtins(obj)
