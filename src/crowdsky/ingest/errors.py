"""Errors of the upload intake, each naming the file or session and what to do about it.

Hierarchy::

    IngestError
    ├── InvalidFits          the bytes are not a usable raw frame (400)
    ├── InvalidFileName      the client's file name is unsafe or unusable (400)
    ├── FileTooLarge         the file exceeds the per-file size limit (413)
    ├── SessionNotFound      no such session for this user (404; never reveals others')
    ├── SessionClosed        the session is finalized or expired (409)
    ├── EmptySession         finalize of a session without files (409)
    ├── TooManyOpenSessions  the user's limit of open sessions is reached (409)
    └── IllegalSessionMove   a status change outside the allowed moves (a bug; 500)

The server maps these to HTTP statuses in one table (``server/errors.py``); the
message of each is what the person at the other end reads.
"""

from __future__ import annotations


class IngestError(Exception):
    """The upload was refused."""


class FileError(IngestError):
    """A problem with one uploaded file; the message starts with the file name."""

    def __init__(self, filename: str, reason: str) -> None:
        super().__init__(f"{filename}: {reason}")
        self.filename = filename
        self.reason = reason


class InvalidFits(FileError):
    """The file is not a readable FITS raw frame."""


class InvalidFileName(FileError):
    """The file name is unsafe (path parts, control characters) or too long."""


class FileTooLarge(FileError):
    """The file is larger than the configured per-file limit."""


class SessionNotFound(IngestError):
    """No upload session with this token belongs to the caller."""


class SessionClosed(IngestError):
    """The upload session no longer accepts changes (finalized or expired)."""


class EmptySession(IngestError):
    """The upload session has no files to finalize."""


class TooManyOpenSessions(IngestError):
    """The user already has as many open upload sessions as the server allows."""


class IllegalSessionMove(IngestError):
    """A session status change outside ``session_states.ALLOWED_MOVES`` (a bug, never input)."""
