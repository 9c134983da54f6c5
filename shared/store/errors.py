"""Store errors, mirroring the Kubernetes API status reasons they map to."""

from __future__ import annotations


class StoreError(Exception):
    """Root of store errors; ``code`` is the HTTP status the API answers with."""

    code = 500
    reason = "InternalError"


class NotFound(StoreError):
    code = 404
    reason = "NotFound"


class AlreadyExists(StoreError):
    code = 409
    reason = "AlreadyExists"


class Conflict(StoreError):
    """resourceVersion precondition failed: someone else wrote first."""

    code = 409
    reason = "Conflict"


class Gone(StoreError):
    """A watch asked to resume from a resourceVersion older than the store keeps."""

    code = 410
    reason = "Expired"


class Invalid(StoreError):
    code = 422
    reason = "Invalid"


class Unavailable(StoreError):
    code = 503
    reason = "ServiceUnavailable"
