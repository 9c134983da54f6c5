"""System of record: the store interface, its errors and backends."""

from shared.store import prefetch
from shared.store.base import ListResult, Store, WatchEvent, object_key
from shared.store.errors import (
    AlreadyExists,
    Conflict,
    Gone,
    Invalid,
    NotFound,
    StoreError,
    Unavailable,
)

__all__ = [
    "AlreadyExists", "Conflict", "Gone", "Invalid", "ListResult", "NotFound", "Store",
    "StoreError", "Unavailable", "WatchEvent", "object_key", "prefetch",
]
