"""Benchmarks: scripts that print figures as tables (``python -m bench.<name>``).

Each script starts its own nats-server and service processes on loopback, drives them
from a separate load process at a fixed rate, bounded in count and time, and prints what
it measured. Targets appear in the printed figures only; nothing here asserts on time.
"""
