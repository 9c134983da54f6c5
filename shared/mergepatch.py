"""RFC 7386 JSON merge patch, shared by the API gateway (PATCH) and the store
(``Store.patch_status``) so both apply one set of rules."""

from __future__ import annotations

import copy
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply ``patch`` to ``target`` and return the result; neither argument is changed.

    An object patch merges key by key (``null`` removes the key, nested objects merge);
    anything else, arrays included, replaces the target whole.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
