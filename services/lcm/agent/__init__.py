"""The LCM agent: one process per node, applying its LCMMachine's state items in order.

``client`` speaks the regional endpoint's HTTP API, ``journal`` remembers on the node which
item hashes are finished (so a restarted agent never re-runs them), ``executor`` applies
one item (``NodeRootExecutor`` into a directory, ``HostExecutor`` with real commands) and
``runner`` is the loop tying them together.
"""
