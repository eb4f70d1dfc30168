"""Errors the ``lectr`` command reports as one line."""

from __future__ import annotations


class CommandError(Exception):
    """A failure to report as ``lectr: <message>``, exiting with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
