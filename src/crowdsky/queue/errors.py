"""Queue errors. Each one's docstring is its default message; the server maps them to 4xx."""

from __future__ import annotations


class QueueError(Exception):
    """The job queue refused the request."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class JobNotFound(QueueError):
    """No such job."""


class RawFileNotFound(QueueError):
    """No such raw file, or it has been deleted."""


class WrongState(QueueError):
    """The job is not in a state that allows this."""


class HeldByOtherWorker(QueueError):
    """The job is held by another worker."""


class AlreadyCompleted(QueueError):
    """The job was already completed with a different result."""


class IllegalMove(QueueError):
    """A job status change outside ``queue.states.ALLOWED_MOVES`` (a bug, never input)."""
