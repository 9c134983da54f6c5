"""Regions: a regional service set on its own nats-server, linked to management.

``topology`` configures the two servers (leafnode hub and leaf, one JetStream domain each),
``merge`` decides which side owns which fields, and ``link`` moves changes across.
"""
