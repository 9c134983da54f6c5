"""JSON responses encoded by msgspec, and objects as clients see them.

``aiohttp.web.json_response`` goes through the stdlib ``json`` module; msgspec encodes the
same values several times faster, and a kind without secret fields is encoded straight
from its struct instead of being turned into builtins first. Bodies are compact JSON
(no spaces after separators) with the same ``application/json; charset=utf-8`` type.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from shared.models import Resource, redact, to_dict

_encode = msgspec.json.Encoder().encode


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(body=_encode(data), status=status, headers=headers,
                        content_type="application/json", charset="utf-8")


def wire(obj: Resource) -> dict[str, Any]:
    """The object as clients see it: camelCase builtins with secrets blanked."""
    return redact(to_dict(obj), type(obj))


def object_response(obj: Resource, *, status: int = 200) -> web.Response:
    """``obj`` as clients see it; secrets are blanked for kinds that have them."""
    body = _encode(wire(obj)) if type(obj).SECRET_FIELDS else _encode(obj)
    return web.Response(body=body, status=status, content_type="application/json",
                        charset="utf-8")
