"""LCM: turns managed Clusters and Machines into per-node deployment state run by agents.

``cluster`` (Cluster -> LCMCluster/LCMMachines, rolling upgrades, status aggregation),
``lcmmachine`` (phases from agent reports, heartbeat health), ``machine`` (the deletion
flow on Machines), ``endpoint`` (the regional HTTP API agents use), ``agent`` (the per-node
process) and ``items`` (state items derived from a ClusterRelease).
"""
