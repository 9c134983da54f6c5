"""Which objects of one kind name each cluster, kept by their own reconciles.

A Cluster's or a Machine's event must wake the health checks or pools of its cluster; the
reconciles of those objects record the cluster each names, so the event is mapped without
a list. After a restart the controller's start-up resync reconciles every object, which
fills the index before any event could be missed for want of it.
"""

from __future__ import annotations

from shared.runtime import Request


class ClusterIndex:
    def __init__(self) -> None:
        self._by_cluster: dict[tuple[str | None, str], set[str]] = {}
        self._cluster_of: dict[tuple[str | None, str], str] = {}

    def follow(self, namespace: str | None, name: str, cluster: str) -> None:
        self.forget(namespace, name)
        self._cluster_of[(namespace, name)] = cluster
        self._by_cluster.setdefault((namespace, cluster), set()).add(name)

    def forget(self, namespace: str | None, name: str) -> None:
        cluster = self._cluster_of.pop((namespace, name), None)
        if cluster is not None:
            names = self._by_cluster.get((namespace, cluster), set())
            names.discard(name)
            if not names:
                self._by_cluster.pop((namespace, cluster), None)

    def requests(self, namespace: str | None, cluster: str) -> list[Request]:
        return [Request(n, namespace)
                for n in sorted(self._by_cluster.get((namespace, cluster), ()))]
