"""Kubernetes ``Status`` bodies for every error the gateway answers.

Handlers raise ``ApiError``; the error middleware turns it, store errors and model
validation errors into a Status JSON response so clients see one shape for every failure.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.api.respond import json_response
from shared.models import ValidationError
from shared.store import Invalid, StoreError

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
    503: "ServiceUnavailable",
}


class ApiError(Exception):
    """An error answered as a Kubernetes Status with ``code``."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        causes: list[dict[str, str]] | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = dict(details or {})
        if causes:
            self.details["causes"] = causes
        self.headers = headers or {}

    @classmethod
    def from_store(cls, err: StoreError, **details: Any) -> ApiError:
        causes = err.causes if isinstance(err, Invalid) else None
        return cls(err.code, str(err), reason=err.reason, details=details or None,
                   causes=causes or None)

    @classmethod
    def from_validation(cls, err: ValidationError, *, kind: str = "") -> ApiError:
        field = field_path(err.path)
        message = f"{kind} is invalid: {field}: {err.reason}" if kind else str(err)
        return cls(
            422,
            message,
            reason="Invalid",
            causes=[{"field": field, "message": err.reason, "reason": "FieldValueInvalid"}],
            details={"kind": kind} if kind else None,
        )

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.message, reason=self.reason, details=self.details)

    def response(self) -> web.Response:
        return json_response(self.body(), status=self.code, headers=self.headers)


def field_path(path: str) -> str:
    """``$.spec.region`` -> ``spec.region`` (the Kubernetes cause field form)."""
    if path.startswith("$."):
        return path[2:]
    return "" if path == "$" else path


def status_body(
    code: int, message: str, *, reason: str = "", details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason or REASONS.get(code, ""),
        "code": code,
    }
    if details:
        body["details"] = details
    return body
