"""The one error type the CLI prints (without a traceback) before exiting non-zero."""

from __future__ import annotations


class CliError(Exception):
    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
