"""Every resource kind of the product, as msgspec Structs (one source of truth).

The API decodes user payloads into these types, the store persists them, and the CRD
manifests are generated from them (see ``shared.models.crd``). Spec is written by users,
status only by controllers.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from msgspec import Meta, Struct, field

from shared.armor import dearmor_keys
from shared.models.meta import (
    CLUSTER_LABEL,
    MACHINE_LABEL,
    POOL_LABEL,
    POOL_TEMPLATE_ANNOTATION,
    REBOOT_DONE_ANNOTATION,
    REBOOT_GRACEFUL_ANNOTATION,
    REBOOT_OFF_ANNOTATION,
    REBOOT_REQUEST_ANNOTATION,
    TARGET_ANNOTATION,
    DNSLabel,
    Name,
    NonNegative,
    Resource,
    Status,
    Wire,
)

ProviderName = Literal["baremetal", "openstack", "vsphere", "simulated"]
MachineRole = Literal["control-plane", "worker"]
Port = Annotated[int, Meta(ge=1, le=65535)]
Sha256 = Annotated[str, Meta(pattern=r"^[a-f0-9]{64}$")]


class _Spec(Wire, kw_only=True):
    pass


# --- Region -------------------------------------------------------------------------------


class RegionSpec(_Spec, kw_only=True):
    providers: list[ProviderName] = field(default_factory=list)
    description: str = ""
    nats_url: str = ""


class RegionStatus(Status, kw_only=True):
    # The region's services with no live replica at the last check (ServicesReady in words).
    services_down: list[str] = field(default_factory=list)


class Region(Resource, kw_only=True):
    KIND: ClassVar[str] = "Region"
    PLURAL: ClassVar[str] = "regions"
    HAS_PHASE: ClassVar[bool] = True
    HAS_READY: ClassVar[bool] = True
    NAMESPACED: ClassVar[bool] = False
    spec: RegionSpec = field(default_factory=RegionSpec)
    status: RegionStatus = field(default_factory=RegionStatus)

    def offers(self, provider: str) -> bool:
        """Whether clusters of this region may use ``provider`` (a Region that lists no
        providers offers any)."""
        return not self.spec.providers or provider in self.spec.providers

    def region(self) -> str:
        return self.metadata.name


# --- Cluster / Machine / UpdateGroup -----------------------------------------------------------


class ClusterSpec(_Spec, kw_only=True):
    region: DNSLabel
    provider: ProviderName
    release: Name
    credential: str = ""
    paused: bool = False
    # Maintenance mode: no upgrade starts, and its Machines may enter maintenance too.
    maintenance: bool = False
    # Attached MKE clusters carry no LCM agents; managed ones do.
    description: str = ""


class ClusterStatus(Status, kw_only=True):
    release: str = ""
    ready_machines: NonNegative = 0
    total_machines: NonNegative = 0
    available_upgrades: list[str] = field(default_factory=list)


class Cluster(Resource, kw_only=True):
    KIND: ClassVar[str] = "Cluster"
    PLURAL: ClassVar[str] = "clusters"
    HAS_PHASE: ClassVar[bool] = True
    HAS_READY: ClassVar[bool] = True
    spec: ClusterSpec
    status: ClusterStatus = field(default_factory=ClusterStatus)


class OpenStackMachineSpec(_Spec, kw_only=True):
    flavor: str
    image: str
    network: str
    floating_network: str = ""
    key_name: str = ""


class VsphereMachineSpec(_Spec, kw_only=True):
    template: str
    datacenter: str
    cluster: str = ""
    datastore: str = ""
    folder: str = ""
    resource_pool: str = ""
    num_cpus: Annotated[int, Meta(ge=1)] = 2
    memory_mib: Annotated[int, Meta(ge=256)] = 4096


class BareMetalMachineSpec(_Spec, kw_only=True):
    host_selector: dict[str, str] = field(default_factory=dict)
    image: str = "ubuntu-22.04"


class SimulatedMachineSpec(_Spec, kw_only=True):
    flavor: str = "small"


_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
# Label prefixes a user may not put on a node: Kubernetes' own (but for the node-role
# labels, which name what a node is for) and this product's.
_RESERVED = ("kubernetes.io", "k8s.io", "containercloud.dev")
_ALLOWED = ("node-role.kubernetes.io",)


def check_node_labels(labels: dict[str, str]) -> None:
    """Kubernetes' label syntax, and no reserved prefix: a label the node would refuse (or
    that would impersonate the system) fails here rather than on the node."""
    for key, value in sorted(labels.items()):
        prefix, _, name = key.rpartition("/")
        if prefix and not _DNS_SUBDOMAIN.match(prefix):
            raise ValueError(f"nodeLabels: key {key!r}: the prefix must be a DNS subdomain")
        if not _LABEL_NAME.match(name):
            raise ValueError(f"nodeLabels: key {key!r}: the name must be 1-63 characters, "
                             "alphanumeric at both ends, with - _ . between")
        if value and not _LABEL_NAME.match(value):
            raise ValueError(f"nodeLabels: value {value!r} of {key!r}: at most 63 characters, "
                             "alphanumeric at both ends, with - _ . between")
        if prefix not in _ALLOWED and any(prefix == r or prefix.endswith("." + r)
                                          for r in _RESERVED):
            raise ValueError(f"nodeLabels: key {key!r}: the prefix {prefix} is reserved "
                             f"(only {', '.join(_ALLOWED)} of it may be set)")


class MachineTemplateSpec(_Spec, kw_only=True):
    """What a node is made from: a MachinePool's template, and the part of a Machine's spec
    a pool gives its Machines (a Machine adds its cluster, region and role - a pool's are
    the pool's, and always worker: control-plane membership is not a number to scale)."""

    update_group: str = ""
    # Labels of the node in the cluster (placement of workloads); LCM keeps them set,
    # changes included, without draining the node. In a template a change applies as any
    # template change does (strategy): existing Machines keep theirs unless replaced, or
    # relabelled one by one (their own spec.nodeLabels).
    node_labels: dict[str, str] = field(default_factory=dict)
    openstack: OpenStackMachineSpec | None = None
    vsphere: VsphereMachineSpec | None = None
    baremetal: BareMetalMachineSpec | None = None
    simulated: SimulatedMachineSpec | None = None

    def __post_init__(self) -> None:
        check_node_labels(self.node_labels)


class MachineSpec(MachineTemplateSpec, kw_only=True):
    cluster: Name
    role: MachineRole = "worker"
    region: DNSLabel
    # Maintenance mode (only while its Cluster is in it): the node is cordoned and drained
    # and LCM applies nothing new to it, so the operator can work on the host.
    maintenance: bool = False


class ProviderStep(Struct, kw_only=True, rename="camel", omit_defaults=True):
    name: str
    state: Literal["Pending", "InProgress", "Done", "Failed"] = "Pending"
    message: str = ""
    time: str = ""


class MachineStatus(Status, kw_only=True):
    provider_id: str = ""
    node_name: str = ""
    addresses: list[str] = field(default_factory=list)
    provider_steps: list[ProviderStep] = field(default_factory=list)
    lcm_phase: str = ""


class Machine(Resource, kw_only=True):
    KIND: ClassVar[str] = "Machine"
    PLURAL: ClassVar[str] = "machines"
    HAS_PHASE: ClassVar[bool] = True
    HAS_READY: ClassVar[bool] = True
    # LCM labels it with its cluster; a cloud provider records the credential its node was
    # made with; a health check asks for a reboot and the provider answers.
    # A machine pool marks the Machines it makes with its name and template.
    CONTROLLER_LABELS: ClassVar[frozenset[str]] = frozenset({CLUSTER_LABEL, POOL_LABEL})
    CONTROLLER_ANNOTATIONS: ClassVar[frozenset[str]] = frozenset({
        TARGET_ANNOTATION, REBOOT_REQUEST_ANNOTATION, REBOOT_OFF_ANNOTATION,
        REBOOT_DONE_ANNOTATION, REBOOT_GRACEFUL_ANNOTATION, POOL_TEMPLATE_ANNOTATION})
    spec: MachineSpec
    status: MachineStatus = field(default_factory=MachineStatus)


class UpdateGroupSpec(_Spec, kw_only=True):
    cluster: Name
    index: NonNegative = 0
    concurrent_updates: Annotated[int, Meta(ge=1)] = 1
    region: str = ""


class UpdateGroup(Resource, kw_only=True):
    KIND: ClassVar[str] = "UpdateGroup"
    PLURAL: ClassVar[str] = "updategroups"
    spec: UpdateGroupSpec
    status: Status = field(default_factory=Status)


# --- MachinePool (Cluster API's MachineSet, for workers) -------------------------------------

# Replicas of one pool, bounded as a region's capacity is (a typo of 10000 would otherwise
# order ten thousand nodes).
Replicas = Annotated[int, Meta(ge=0, le=1000)]


class MachineTemplateMeta(Wire, kw_only=True):
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


class MachineTemplate(Wire, kw_only=True):
    metadata: MachineTemplateMeta = field(default_factory=MachineTemplateMeta)
    spec: MachineTemplateSpec = field(default_factory=MachineTemplateSpec)


class RollingUpdate(Wire, kw_only=True):
    # Machines beyond spec.replicas made ahead of the old ones' removal (a spare host each,
    # on bare metal), and Ready machines below spec.replicas the rollout may take away.
    max_surge: Replicas = 1
    max_unavailable: Replicas = 0


class PoolStrategy(Wire, kw_only=True):
    # OnDelete: a template change applies to Machines made after it; the older ones stay
    # until deleted. RollingUpdate: they are replaced, within rollingUpdate's bounds.
    type: Literal["OnDelete", "RollingUpdate"] = "OnDelete"
    rolling_update: RollingUpdate = field(default_factory=RollingUpdate)

    def __post_init__(self) -> None:
        ru = self.rolling_update
        if self.type == "RollingUpdate" and ru.max_surge == ru.max_unavailable == 0:
            raise ValueError("rollingUpdate: maxSurge and maxUnavailable cannot both be 0: "
                             "no machine could ever be replaced")


class MachinePoolSpec(_Spec, kw_only=True):
    cluster: Name
    # The cluster's region: that region's LCM keeps the pool (as a Machine's spec.region).
    region: DNSLabel
    replicas: Replicas = 1
    # Which Machines go first when the pool shrinks, after those marked with the
    # delete-machine annotation, those made from an older template and those not Ready.
    delete_policy: Literal["Newest", "Oldest"] = "Newest"
    strategy: PoolStrategy = field(default_factory=PoolStrategy)
    template: MachineTemplate = field(default_factory=MachineTemplate)


class MachinePoolStatus(Status, kw_only=True):
    replicas: NonNegative = 0  # Machines of the pool, not being deleted
    ready_replicas: NonNegative = 0
    # Made from the current template (a template change applies to Machines made after it).
    updated_replicas: NonNegative = 0
    selector: str = ""  # the label selector of its Machines (the scale subresource's)


class MachinePool(Resource, kw_only=True):
    """Keeps ``replicas`` worker Machines of a cluster made from one template."""

    KIND: ClassVar[str] = "MachinePool"
    PLURAL: ClassVar[str] = "machinepools"
    HAS_PHASE: ClassVar[bool] = True
    HAS_READY: ClassVar[bool] = True
    SCALE: ClassVar[bool] = True
    spec: MachinePoolSpec
    status: MachinePoolStatus = field(default_factory=MachinePoolStatus)


# --- MachineHealthCheck (Cluster API's, with Metal3's reboot remediation) --------------------

# Timeouts in seconds; bounded so a deadline always fits a timer (a year at most).
Seconds = Annotated[int, Meta(ge=0, le=31_536_000)]
_PERCENT = re.compile(r"^(100|[1-9]?[0-9])%$")


class UnhealthyCondition(Wire, kw_only=True):
    """A Machine condition held at this status longer than timeoutSeconds makes it unhealthy."""

    type: Annotated[str, Meta(min_length=1, max_length=316)]
    status: Literal["False", "Unknown"]
    timeout_seconds: Seconds


def _default_unhealthy() -> list[UnhealthyCondition]:
    return [UnhealthyCondition(type="Ready", status="False", timeout_seconds=300),
            UnhealthyCondition(type="Ready", status="Unknown", timeout_seconds=300)]


class MachineSelector(Wire, kw_only=True):
    """Which of the cluster's Machines a check covers: all of them when empty."""

    match_labels: dict[str, str] = field(default_factory=dict)

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels.items())


class Remediation(Wire, kw_only=True):
    # Reboot: the Machine's provider power cycles the node (Metal3's reboot remediation).
    # Replace: the Machine is deleted and its MachinePool makes a new one (Cluster API's
    # remediation); a machine of no pool is given up on (nothing would replace it).
    strategy: Literal["Reboot", "Replace"] = "Reboot"
    # Reboots of one machine before the check gives up on it (HealthCheckSucceeded False,
    # RemediationFailed), each at least retryIntervalSeconds after the one before.
    retry_limit: Annotated[int, Meta(ge=1, le=100)] = 2
    retry_interval_seconds: Seconds = 300


class MachineHealthCheckSpec(_Spec, kw_only=True):
    cluster: Name
    # The cluster's region: that region's LCM runs the check (as a Machine's spec.region).
    region: DNSLabel
    selector: MachineSelector = field(default_factory=MachineSelector)
    unhealthy_conditions: list[UnhealthyCondition] = field(default_factory=_default_unhealthy)
    # A machine whose node has not come up (deployed once) this long after its provider
    # reported it running counts unhealthy; 0 turns this check off.
    node_startup_timeout_seconds: Seconds = 1200
    # More machines unhealthy than this (a count, or a percentage of the machines the check
    # covers, rounded down) and none is remediated: a partition must not reboot the fleet.
    max_unhealthy: int | str = "40%"
    remediation: Remediation = field(default_factory=Remediation)

    def __post_init__(self) -> None:
        m = self.max_unhealthy
        if (isinstance(m, int) and m < 0) or (isinstance(m, str) and not _PERCENT.match(m)):
            raise ValueError(f"maxUnhealthy must be a count (0 or more) or a percentage "
                             f"from 0% to 100%, not {m!r}")


class HealthCheckTarget(Wire, kw_only=True):
    """A machine the check remediates: its reboots so far and the latest request."""

    machine: str
    # Rebooting (the latest request not yet done), Rebooted (waiting for the node to
    # recover), Replacing (deleted for its pool to replace), Failed (retryLimit reboots did
    # not bring it back, or nothing would replace it).
    state: Literal["Rebooting", "Rebooted", "Replacing", "Failed"]
    attempts: NonNegative = 0
    last_attempt_time: str = ""
    request_id: str = ""
    reason: str = ""
    message: str = ""


class MachineHealthCheckStatus(Status, kw_only=True):
    expected_machines: NonNegative = 0
    current_healthy: NonNegative = 0
    remediations_allowed: NonNegative = 0
    targets: list[HealthCheckTarget] = field(default_factory=list)


class MachineHealthCheck(Resource, kw_only=True):
    """Reboots the nodes of a cluster's machines that stop being healthy."""

    KIND: ClassVar[str] = "MachineHealthCheck"
    PLURAL: ClassVar[str] = "machinehealthchecks"
    HAS_READY: ClassVar[bool] = True
    spec: MachineHealthCheckSpec
    status: MachineHealthCheckStatus = field(default_factory=MachineHealthCheckStatus)


class GracefulRebootRequestSpec(_Spec, kw_only=True):
    # The cluster's region: that region's LCM carries the reboots out.
    region: DNSLabel
    # Machines to reboot, in the cluster's upgrade order (control plane one at a time, then
    # workers by update group); empty: every machine the cluster has when LCM first sees
    # the request.
    machines: list[Name] = field(default_factory=list)


class RebootTarget(Wire, kw_only=True):
    """One machine of a graceful reboot and how far it got."""

    machine: str
    # Waiting (not started), Draining (cordoned, the agent drains the node), Rebooting (the
    # provider power cycles the node), Uncordoning (back on, the agent uncordons), Done,
    # Skipped (the machine was deleted), Failed (the provider never answered).
    state: Literal["Waiting", "Draining", "Rebooting", "Uncordoning", "Done", "Skipped",
                   "Failed"] = "Waiting"
    request_id: str = ""
    started_at: str = ""  # when it was cordoned
    reboot_requested_at: str = ""
    finished_at: str = ""
    message: str = ""


class GracefulRebootRequestStatus(Status, kw_only=True):
    targets: list[RebootTarget] = field(default_factory=list)
    rebooted: NonNegative = 0  # targets Done (or Skipped) of ``total``
    total: NonNegative = 0


class GracefulRebootRequest(Resource, kw_only=True):
    """A rolling reboot of a cluster's machines, each drained first (named after the cluster,
    as Mirantis Container Cloud's)."""

    KIND: ClassVar[str] = "GracefulRebootRequest"
    PLURAL: ClassVar[str] = "gracefulrebootrequests"
    HAS_PHASE: ClassVar[bool] = True
    HAS_READY: ClassVar[bool] = True
    spec: GracefulRebootRequestSpec
    status: GracefulRebootRequestStatus = field(default_factory=GracefulRebootRequestStatus)


# --- LCM -----------------------------------------------------------------------------------


class StateItem(Struct, kw_only=True, rename="camel", omit_defaults=True):
    """One step an LCM agent applies on its node; ``version`` changes force a re-run."""

    name: str
    phase: Literal["prepare", "deploy", "reconfigure"]
    version: str
    runner: str = "file"
    params: dict[str, str] = field(default_factory=dict)


class LCMClusterSpec(_Spec, kw_only=True):
    cluster: Name
    region: DNSLabel
    release: str


class LCMClusterStatus(Status, kw_only=True):
    ready_nodes: NonNegative = 0
    total_nodes: NonNegative = 0
    release: str = ""
    upgrade_in_progress: bool = False
    # The control-plane machine every node joins MKE through, and its address.
    manager_machine: str = ""
    manager_address: str = ""


class LCMCluster(Resource, kw_only=True):
    KIND: ClassVar[str] = "LCMCluster"
    PLURAL: ClassVar[str] = "lcmclusters"
    HAS_PHASE: ClassVar[bool] = True
    HAS_READY: ClassVar[bool] = True
    spec: LCMClusterSpec
    status: LCMClusterStatus = field(default_factory=LCMClusterStatus)


class LCMMachineSpec(_Spec, kw_only=True):
    cluster: Name
    machine: Name
    region: DNSLabel
    role: MachineRole = "worker"
    release: str = ""
    state_items: list[StateItem] = field(default_factory=list)
    cordoned: bool = False
    # uid of the Machine this node backs: the agent's token is derived from it.
    machine_uid: str = ""


class StateItemStatus(Struct, kw_only=True, rename="camel", omit_defaults=True):
    hash: str = ""
    state: Literal["Pending", "Running", "Done", "Failed"] = "Pending"
    message: str = ""
    attempts: NonNegative = 0
    finished_at: str = ""


class LCMMachineStatus(Status, kw_only=True):
    hostname: str = ""
    ip: str = ""
    release: str = ""
    # Written on agent reports and at least every heartbeat_status_interval; the node's
    # lease (services.lcm.leases) holds its latest sign of life.
    heartbeat: str = ""
    state_items: dict[str, StateItemStatus] = field(default_factory=dict)
    # The agent's acknowledgement that the node is cordoned and drained (spec.cordoned).
    cordoned: bool = False
    # Why the agent could not cordon/drain or uncordon the node as asked ("" if it could).
    cordon_error: str = ""


class LCMMachine(Resource, kw_only=True):
    KIND: ClassVar[str] = "LCMMachine"
    PLURAL: ClassVar[str] = "lcmmachines"
    HAS_PHASE: ClassVar[bool] = True
    HAS_READY: ClassVar[bool] = True
    spec: LCMMachineSpec
    status: LCMMachineStatus = field(default_factory=LCMMachineStatus)


# --- Releases ---------------------------------------------------------------------------------


class Artifact(Struct, kw_only=True, rename="camel", omit_defaults=True):
    type: Literal["deb", "helm", "image", "binary"]
    name: str
    version: str = ""
    sha256: str = ""


class ClusterReleaseSpec(_Spec, kw_only=True):
    version: str
    mke_version: str
    container_runtime: str = "containerd"
    container_runtime_version: str = ""
    allowed_upgrades: list[str] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    description: str = ""


class ClusterRelease(Resource, kw_only=True):
    KIND: ClassVar[str] = "ClusterRelease"
    PLURAL: ClassVar[str] = "clusterreleases"
    NAMESPACED: ClassVar[bool] = False
    spec: ClusterReleaseSpec
    status: Status = field(default_factory=Status)


class SupportedClusterRelease(Struct, kw_only=True, rename="camel", omit_defaults=True):
    name: str
    available_upgrades: list[str] = field(default_factory=list)


class KaaSReleaseSpec(_Spec, kw_only=True):
    version: str
    supported_cluster_releases: list[SupportedClusterRelease] = field(default_factory=list)


class KaaSRelease(Resource, kw_only=True):
    KIND: ClassVar[str] = "KaaSRelease"
    PLURAL: ClassVar[str] = "kaasreleases"
    NAMESPACED: ClassVar[bool] = False
    spec: KaaSReleaseSpec
    status: Status = field(default_factory=Status)


# --- Credentials and inventory ---------------------------------------------------------------


class OpenStackAuth(_Spec, kw_only=True):
    auth_url: str
    username: str = ""
    password: str = ""
    project_name: str = ""
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    application_credential_id: str = ""
    application_credential_secret: str = ""


class OpenStackCredentialSpec(_Spec, kw_only=True):
    region: DNSLabel
    auth: OpenStackAuth
    region_name: str = "RegionOne"
    interface: str = "public"
    verify: bool = True


class OpenStackCredential(Resource, kw_only=True):
    KIND: ClassVar[str] = "OpenStackCredential"
    PLURAL: ClassVar[str] = "openstackcredentials"
    HAS_READY: ClassVar[bool] = True
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("auth.password", "auth.applicationCredentialSecret")
    spec: OpenStackCredentialSpec
    status: Status = field(default_factory=Status)


class VsphereCredentialSpec(_Spec, kw_only=True):
    region: DNSLabel
    server: str
    port: Port = 443
    protocol: Literal["https", "http"] = "https"
    username: str
    password: str = ""
    insecure: bool = False


class VsphereCredential(Resource, kw_only=True):
    KIND: ClassVar[str] = "VsphereCredential"
    PLURAL: ClassVar[str] = "vspherecredentials"
    HAS_READY: ClassVar[bool] = True
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("password",)
    spec: VsphereCredentialSpec
    status: Status = field(default_factory=Status)


class BareMetalHostCredentialSpec(_Spec, kw_only=True):
    region: DNSLabel
    username: str
    password: str = ""


# BMC credentials the BareMetalHosts of one namespace share by name (Mirantis Container
# Cloud's kind; Metal3 keeps them in a Secret its hosts name in bmc.credentialsName).
class BareMetalHostCredential(Resource, kw_only=True):
    KIND: ClassVar[str] = "BareMetalHostCredential"
    PLURAL: ClassVar[str] = "baremetalhostcredentials"
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("password",)
    spec: BareMetalHostCredentialSpec
    status: Status = field(default_factory=Status)


# A host's BMC credentials are either inline (username/password, kept for compatibility)
# or the BareMetalHostCredential credentialsName names in the host's namespace, never both.
class BMCDetails(_Spec, kw_only=True):
    address: str
    username: str = ""
    password: str = ""
    credentials_name: Annotated[str, Meta(
        pattern=r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?$", max_length=253)] = ""
    system_id: str = ""
    verify: bool = False

    def __post_init__(self) -> None:
        if self.credentials_name and (self.password or self.username):
            given = "password" if self.password else "username"
            raise ValueError(
                f"credentialsName and an inline {given} are mutually exclusive: name a "
                "BareMetalHostCredential or give username/password inline, not both")


class BareMetalHostSpec(_Spec, kw_only=True):
    region: DNSLabel
    bmc: BMCDetails
    boot_mac_address: Annotated[str, Meta(pattern=r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")]
    online: bool = False
    image: str = ""
    consumer: str = ""


class HardwareInfo(Struct, kw_only=True, rename="camel", omit_defaults=True):
    cpus: NonNegative = 0
    memory_mib: NonNegative = 0
    nics: list[str] = field(default_factory=list)
    system_uuid: str = ""


class BareMetalHostStatus(Status, kw_only=True):
    provisioning_state: str = ""
    power_state: str = ""
    hardware: HardwareInfo | None = None
    consumer: str = ""


class BareMetalHost(Resource, kw_only=True):
    KIND: ClassVar[str] = "BareMetalHost"
    PLURAL: ClassVar[str] = "baremetalhosts"
    HAS_READY: ClassVar[bool] = True
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("bmc.password",)
    SECRET_REFERENCES: ClassVar[dict[str, str]] = {"bmc.password": "bmc.credentialsName"}
    # The bare-metal provider claims a host for a Machine (consumer = its uid, powered
    # online, labelled with its name) and frees it when the Machine goes.
    CONTROLLER_SPEC: ClassVar[frozenset[str]] = frozenset({"consumer", "online"})
    CONTROLLER_LABELS: ClassVar[frozenset[str]] = frozenset({MACHINE_LABEL})
    spec: BareMetalHostSpec
    status: BareMetalHostStatus = field(default_factory=BareMetalHostStatus)


class PublicKeySpec(_Spec, kw_only=True):
    public_key: Annotated[str, Meta(pattern=r"^(ssh-(rsa|ed25519)|ecdsa-sha2-\S+) \S+")]


class PublicKey(Resource, kw_only=True):
    KIND: ClassVar[str] = "PublicKey"
    PLURAL: ClassVar[str] = "publickeys"
    spec: PublicKeySpec
    status: Status = field(default_factory=Status)


# --- Attach MKE and the artifact mirror ---------------------------------------------------------


class AttachedClusterSpec(_Spec, kw_only=True):
    region: DNSLabel
    endpoint: str
    kubeconfig: str = ""
    poll_interval_seconds: Annotated[int, Meta(ge=1)] = 30


class AttachedNode(Wire, kw_only=True):
    """One node of an attached cluster, as its API server reported it at the last probe."""

    name: str
    ready: bool = False
    roles: list[str] = field(default_factory=list)
    kubelet_version: str = ""


class AttachedClusterStatus(Status, kw_only=True):
    kubernetes_version: str = ""
    nodes: list[str] = field(default_factory=list)
    healthy: bool = False
    last_probe: str = ""
    ready_nodes: NonNegative = 0
    node_details: list[AttachedNode] = field(default_factory=list)


class AttachedCluster(Resource, kw_only=True):
    KIND: ClassVar[str] = "AttachedCluster"
    PLURAL: ClassVar[str] = "attachedclusters"
    HAS_PHASE: ClassVar[bool] = True
    HAS_READY: ClassVar[bool] = True
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("kubeconfig",)
    spec: AttachedClusterSpec
    status: AttachedClusterStatus = field(default_factory=AttachedClusterStatus)


class Upstream(_Spec, kw_only=True):
    type: Literal["debian", "helm", "oci"]
    url: str
    # Debian only: which dists/<suite>/<component>/binary-<architecture> index to read.
    suite: str = "stable"
    component: str = "main"
    architecture: str = "amd64"
    # Debian only: the vendor's OpenPGP public key(s), ASCII-armored, as apt's Signed-By
    # takes them. Set, the upstream must publish InRelease and/or Release.gpg, and each
    # must verify against these keys, or none of its packages is mirrored.
    signed_by: str = ""

    def __post_init__(self) -> None:
        if not self.signed_by:
            return
        if self.type != "debian":
            raise ValueError(f"signedBy applies to debian upstreams only, not {self.type}")
        try:
            dearmor_keys(self.signed_by)
        except ValueError as e:
            raise ValueError(f"signedBy must hold ASCII-armored OpenPGP public keys: {e}") \
                from None


class ArtifactMirrorSpec(_Spec, kw_only=True):
    region: DNSLabel
    release: Name
    upstreams: list[Upstream] = field(default_factory=list)
    parallelism: Annotated[int, Meta(ge=1, le=32)] = 4


class ArtifactFailure(Struct, kw_only=True, rename="camel"):
    artifact: str
    reason: str


class ArtifactMirrorStatus(Status, kw_only=True):
    items_total: NonNegative = 0
    items_done: NonNegative = 0
    bytes_total: NonNegative = 0
    bytes_done: NonNegative = 0
    failures: list[ArtifactFailure] = field(default_factory=list)
    # When the last copy pass started (RFC 3339); failed artifacts are retried after it.
    last_attempt_time: str = ""


class ArtifactMirror(Resource, kw_only=True):
    KIND: ClassVar[str] = "ArtifactMirror"
    PLURAL: ClassVar[str] = "artifactmirrors"
    HAS_PHASE: ClassVar[bool] = True
    HAS_READY: ClassVar[bool] = True
    spec: ArtifactMirrorSpec
    status: ArtifactMirrorStatus = field(default_factory=ArtifactMirrorStatus)


ALL_KINDS: tuple[type[Resource], ...] = (
    Region,
    Cluster,
    Machine,
    UpdateGroup,
    MachinePool,
    MachineHealthCheck,
    GracefulRebootRequest,
    LCMCluster,
    LCMMachine,
    KaaSRelease,
    ClusterRelease,
    OpenStackCredential,
    VsphereCredential,
    BareMetalHostCredential,
    BareMetalHost,
    PublicKey,
    AttachedCluster,
    ArtifactMirror,
)

__all__ = [
    n for n, v in list(globals().items())
    if isinstance(v, type) and issubclass(v, Struct) and v.__module__ == __name__ and n[0] != "_"
] + ["ALL_KINDS", "MachineRole", "ProviderName"]
