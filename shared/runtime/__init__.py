"""Controller runtime: work queue, controllers, retry errors, conditions, leader election."""

from shared.runtime.controller import (
    Controller,
    Reconciler,
    Request,
    Result,
    Watch,
    by_label,
    owned_by,
)
from shared.runtime.errors import PermanentError, ReconcileError, TransientError
from shared.runtime.objects import (
    ensure_finalizer,
    remove_finalizer,
    status_writer,
    update_status,
    write_status,
)
from shared.runtime.queue import WorkQueue

__all__ = [
    "Controller", "PermanentError", "ReconcileError", "Reconciler", "Request", "Result",
    "TransientError", "Watch", "WorkQueue", "by_label", "ensure_finalizer", "owned_by",
    "remove_finalizer", "status_writer", "update_status", "write_status",
]
