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
    """A value the store refuses; ``field`` names it (``metadata.name``) when it is one
    field, so the API can answer with a Kubernetes-style cause."""

    code = 422
    reason = "Invalid"

    def __init__(self, message: str, *, field: str = "",
                 causes: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.causes: list[dict[str, str]] = list(causes or [])
        if field and not self.causes:
            self.causes = [{"field": field, "message": message, "reason": "FieldValueInvalid"}]


class Unavailable(StoreError):
    code = 503
    reason = "ServiceUnavailable"
