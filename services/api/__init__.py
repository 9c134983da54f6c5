"""Public API gateway: Kubernetes-style REST, watch, auth, audit and change events.

``create_app(store, auth, ...)`` builds the aiohttp application; ``python -m services.api``
runs it standalone against NATS.
"""

from services.api.app import create_app

__all__ = ["create_app"]
