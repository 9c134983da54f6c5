"""Releases (KaaSRelease, ClusterRelease, the compatibility matrix) and the artifact mirror."""
