"""Retry intent as exception types: the work queue maps them to requeue or give up."""

from __future__ import annotations

DEFAULT_RETRY_DELAY = 1.0


class ReconcileError(Exception):
    """Root of errors a reconciler raises on purpose."""


class TransientError(ReconcileError):
    """Try again after ``delay`` seconds (e.g. a provider timeout, a dependency not ready)."""

    def __init__(self, msg: str, *, delay: float = DEFAULT_RETRY_DELAY) -> None:
        super().__init__(msg)
        self.delay = delay


class PermanentError(ReconcileError):
    """Retrying cannot help until the object changes (e.g. an invalid spec)."""
