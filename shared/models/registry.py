"""Lookup of kinds by name or plural, and the typed codec used at every boundary.

Validation happens on decode (msgspec), so a bad payload is rejected before anything is
written; errors carry the JSON path of the offending field.
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import msgspec

from shared.models.kinds import ALL_KINDS
from shared.models.meta import Resource

R = TypeVar("R", bound=Resource)

BY_KIND: dict[str, type[Resource]] = {k.KIND: k for k in ALL_KINDS}
BY_PLURAL: dict[str, type[Resource]] = {k.PLURAL: k for k in ALL_KINDS}

_encoder = msgspec.json.Encoder()


class ValidationError(ValueError):
    """A payload that does not fit its kind; ``path`` is the JSON path (``$.spec.x``)."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.path = path
        self.reason = message


def kind_of(name: str) -> type[Resource]:
    try:
        return BY_KIND[name]
    except KeyError:
        raise ValidationError(f"unknown kind {name!r}", "$.kind") from None


@functools.cache
def _decoder(cls: type[Resource]) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(cls)


def _split(err: msgspec.ValidationError) -> ValidationError:
    text = str(err)
    if " - at `" in text:
        msg, _, path = text.rpartition(" - at `")
        return ValidationError(msg, path.rstrip("`"))
    return ValidationError(text)


def decode(cls: type[R], data: bytes | str) -> R:
    try:
        return _decoder(cls).decode(data)
    except msgspec.ValidationError as e:
        raise _split(e) from None
    except msgspec.DecodeError as e:
        raise ValidationError(f"malformed JSON: {e}") from None


def convert(cls: type[R], data: Any) -> R:
    """Build a typed object from builtins (parsed YAML/JSON)."""
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as e:
        raise _split(e) from None


def encode(obj: Resource) -> bytes:
    return _encoder.encode(obj)


def to_dict(obj: Resource) -> dict[str, Any]:
    return msgspec.to_builtins(obj)


def redact(data: dict[str, Any], cls: type[Resource]) -> dict[str, Any]:
    """Drop secret spec fields from a wire dict; secrets are write-only."""
    spec = data.get("spec")
    for path in cls.SECRET_FIELDS:
        node = spec
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(leaf):
            node[leaf] = ""
    return data


def copy(obj: R) -> R:
    return decode(type(obj), encode(obj))
