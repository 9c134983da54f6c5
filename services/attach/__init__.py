"""Attach existing (MKE) Kubernetes clusters: verify their access, observe and poll them.

An AttachedCluster is looked at, never managed: no LCM agent runs on its nodes and
detaching it leaves it untouched. See ``reconciler`` for the flow.
"""
