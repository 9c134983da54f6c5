"""The AttachedCluster's conditions, reasons and phases, set from one probe's outcome.

``Connected``: the kubeconfig is usable for ``spec.endpoint`` and the API server accepted
its credentials. ``Healthy``: the last probe reached the API server and every node is
Ready. ``Ready`` summarises both. A cluster that was Connected stays Connected while it is
merely unreachable: its credentials were verified, only its health is in question.
"""

from __future__ import annotations

from services.attach.probe import TLS_ERROR, UNAUTHORIZED, Observation
from shared.models import AttachedClusterStatus
from shared.runtime import conditions as cond

CONNECTED = "Connected"
HEALTHY = "Healthy"
TYPES = [CONNECTED, HEALTHY]

VERIFIED = "Verified"
NODES_READY = "NodesReady"
NODES_NOT_READY = "NodesNotReady"
NO_NODES = "NoNodes"
NOT_PROBED = "NotProbed"

PHASE_READY = "Ready"
PHASE_UNHEALTHY = "Unhealthy"
PHASE_FAILED = "Failed"

# Failures that say the credentials or trust are wrong, not that the cluster is down.
_ACCESS_REASONS = frozenset({UNAUTHORIZED, TLS_ERROR})


def refused(st: AttachedClusterStatus, reason: str, message: str) -> None:
    """The spec cannot be used as is: nothing was sent to the cluster."""
    cond.mark_false(st, CONNECTED, reason, message, "Error")
    cond.mark_unknown(st, HEALTHY, NOT_PROBED, f"not probed: {reason}")
    st.healthy = False
    st.kubernetes_version = ""
    st.nodes, st.node_details, st.ready_nodes = [], [], 0
    st.phase = PHASE_FAILED
    cond.summarize(st, TYPES)


def failed(st: AttachedClusterStatus, reason: str, message: str) -> None:
    """The probe did not get an answer it could use; the last observation is kept."""
    if reason in _ACCESS_REASONS:
        cond.mark_false(st, CONNECTED, reason, message, "Error")
    elif not cond.is_true(st, CONNECTED):
        cond.mark_false(st, CONNECTED, reason, message, "Warning")
    cond.mark_false(st, HEALTHY, reason, message, "Error" if reason in _ACCESS_REASONS
                    else "Warning")
    st.healthy = False
    st.phase = PHASE_UNHEALTHY
    cond.summarize(st, TYPES)


def observed(st: AttachedClusterStatus, seen: Observation) -> None:
    cond.mark_true(st, CONNECTED, VERIFIED,
                   f"the API server accepted the credentials ({seen.kubernetes_version})")
    total, ready = len(seen.nodes), seen.ready_nodes
    if total == 0:
        cond.mark_false(st, HEALTHY, NO_NODES, "the cluster reports no nodes", "Warning")
    elif ready < total:
        down = ", ".join(n.name for n in seen.nodes if not n.ready)
        cond.mark_false(st, HEALTHY, NODES_NOT_READY,
                        f"{total - ready} of {total} nodes not ready: {down}", "Warning")
    else:
        cond.mark_true(st, HEALTHY, NODES_READY, f"{ready} of {total} nodes ready")
    st.healthy = cond.is_true(st, HEALTHY)
    st.phase = PHASE_READY if st.healthy else PHASE_UNHEALTHY
    cond.summarize(st, TYPES)
