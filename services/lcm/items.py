"""State items derived from a ClusterRelease: what an agent applies on its node, in order.

Every node: prepare the host from the regional mirror, install the container runtime
packages, pre-pull the MKE images (phase ``prepare``); then join MKE as manager or worker
(phase ``deploy``) through the cluster's manager address, authenticated by the cluster's
join token - named by reference (``tokenRef``), never by value; the manager node itself
names no address: it installs MKE, which the others join. Control-plane nodes also
deploy the release's addons (Helm charts).
An item's ``version`` follows the release part it installs, so an upgrade re-runs exactly
the items whose content changed; ``item_hash`` identifies an item's full content.
"""

from __future__ import annotations

import hashlib

import msgspec

from services.lcm.tokens import JOIN_TOKEN_REF
from shared.models import ClusterRelease, StateItem, StateItemStatus
from shared.models.kinds import MachineRole

PHASE_ORDER = {"prepare": 0, "deploy": 1, "reconfigure": 2}
JOIN = "mke-join"
NODE_LABELS = "node-labels"

_enc = msgspec.json.Encoder(order="sorted")


def item_hash(item: StateItem) -> str:
    """Content hash of one item: a finished item with this hash need not run again."""
    return hashlib.sha256(_enc.encode(item)).hexdigest()[:16]


def ordered(items: list[StateItem]) -> list[StateItem]:
    """Items in the order an agent applies them: by phase, then as listed."""
    return sorted(items, key=lambda i: PHASE_ORDER[i.phase])


def _join(pairs: list[tuple[str, str]]) -> str:
    return ",".join(f"{n}={v}" if v else n for n, v in pairs)


def release_items(
    release: ClusterRelease, role: MachineRole, *, mirror_url: str, manager: str = ""
) -> list[StateItem]:
    """``manager``: the address of the control-plane node every node joins MKE through;
    "" in the items of that node itself (``role`` control-plane), which installs MKE."""
    spec = release.spec
    debs = [(a.name, a.version) for a in spec.artifacts if a.type == "deb"]
    images = [(a.name, a.version) for a in spec.artifacts if a.type == "image"]
    charts = [(a.name, a.version) for a in spec.artifacts if a.type == "helm"]
    runtime_version = spec.container_runtime_version or spec.version
    items = [
        StateItem(
            name="host-prepare",
            phase="prepare",
            version=spec.version,
            runner="host",
            params={"mirror": mirror_url, "release": release.metadata.name},
        ),
        StateItem(
            name="container-runtime",
            phase="prepare",
            version=runtime_version,
            runner="packages",
            params={"mirror": mirror_url, "packages": _join(debs)},
        ),
        StateItem(
            name="mke-images",
            phase="prepare",
            version=spec.mke_version,
            runner="images",
            params={"mirror": mirror_url, "images": _join(images)},
        ),
        StateItem(
            name=JOIN,
            phase="deploy",
            version=spec.mke_version,
            runner="mke",
            params={"role": "manager" if role == "control-plane" else "worker",
                    "manager": manager, "tokenRef": JOIN_TOKEN_REF},
        ),
    ]
    if role == "control-plane" and charts:
        items.append(
            StateItem(
                name="addons",
                phase="deploy",
                version=spec.version,
                runner="helm",
                params={"mirror": mirror_url, "charts": _join(charts)},
            )
        )
    return items


def node_labels_item(labels: dict[str, str], current: list[StateItem],
                     done: dict[str, StateItemStatus]) -> StateItem | None:
    """The item keeping the node's labels (the Machine's ``nodeLabels``): those wanted, and
    the removal of those an earlier item set and the Machine no longer names - carried on
    until an item with them is done. An applied item stays as it is while the labels do;
    None while there are none at all. A ``reconfigure`` item: a change re-runs it alone,
    with no drain."""
    old = next((i for i in current if i.name == NODE_LABELS), None)
    gone: set[str] = set()
    if old is not None:
        had = dict(_pairs(old.params.get("labels", "")))
        state = done.get(NODE_LABELS)
        if state is not None and state.state == "Done" and state.hash == item_hash(old):
            if had == labels:
                return old  # applied, removals included: nothing to run again
        else:
            gone = set(filter(None, old.params.get("remove", "").split(",")))
        gone |= had.keys()
    gone -= labels.keys()
    if not labels and not gone:
        return None
    params = {"labels": _join(sorted(labels.items())), "remove": ",".join(sorted(gone))}
    version = hashlib.sha256(_enc.encode(params)).hexdigest()[:8]
    return StateItem(name=NODE_LABELS, phase="reconfigure", version=version, runner="labels",
                     params=params)


def _pairs(value: str) -> list[tuple[str, str]]:
    return [(n, v) for n, _, v in (p.partition("=") for p in value.split(",") if p)]


def keep_joined(
    current: list[StateItem], done: dict[str, StateItemStatus], wanted: list[StateItem]
) -> list[StateItem]:
    """``wanted``, with the join item a node has already applied kept as it was when the
    two differ only in the manager address: MKE managers are peers, so a node that joined
    stays joined when the cluster's designated manager changes (its node deleted, say),
    instead of every node re-running its join at once. A new role or MKE version still
    re-runs it."""
    old = next((i for i in current if i.name == JOIN), None)
    state = done.get(JOIN)
    if old is None or state is None or state.state != "Done" or state.hash != item_hash(old):
        return wanted

    def same_but_manager(new: StateItem) -> bool:
        return (new.version, new.runner, new.phase) == (old.version, old.runner, old.phase) \
            and {**new.params, "manager": ""} == {**old.params, "manager": ""}

    return [old if i.name == JOIN and same_but_manager(i) else i for i in wanted]
