"""Errors of the stacks catalogue (reads by owners and by the data API).

::

    StacksError
    ├── StackNotFound     unknown id or key, another user's stack, a private stack
    ├── StackFileMissing  the row exists but its file is not on this server
    └── InvalidQuery      a malformed pixel, an inverted time range, too many ids
"""

from __future__ import annotations


class StacksError(Exception):
    """A stack request cannot be answered."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class StackNotFound(StacksError):
    """No such stack."""


class StackFileMissing(StacksError):
    """The stack's file is not available on this server."""


class InvalidQuery(StacksError):
    """The query is malformed."""
