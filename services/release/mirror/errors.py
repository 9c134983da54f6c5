"""Errors of the artifact mirror; each message is what lands in status for that artifact."""

from __future__ import annotations


class MirrorError(Exception):
    """Root of mirror errors; ``str(e)`` is a complete, user-facing reason."""


class FetchError(MirrorError):
    """An upstream URL could not be fetched (HTTP status, connection failure)."""

    def __init__(self, url: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.status = status


class ChecksumMismatch(MirrorError):
    """Downloaded bytes do not hash to what the index or release says."""

    def __init__(self, what: str, *, expected: str, actual: str) -> None:
        super().__init__(f"sha256 mismatch for {what}: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class NotInUpstream(MirrorError):
    """The upstream's index does not list the artifact the release asks for."""


class BadUpstreamData(MirrorError):
    """An upstream index that cannot be parsed."""


class BadSignature(MirrorError):
    """An upstream index whose OpenPGP signature does not verify against the keys the
    mirror was told to trust (or that publishes none where one is required)."""
