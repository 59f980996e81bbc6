"""Job statuses and the moves between them: the queue's rules in one place.

::

    pending ──claim──▶ processing ──complete──▶ completed
                          │  ▲
          fail / lease    │  │ claim (after not_before)
          expired         ▼  │
                        retry ──(3rd failed attempt)──▶ failed

A job gets ``MAX_ATTEMPTS`` attempts; a failed report or an expired lease counts one.
A worker shutting down hands a job back with ``release_job``, which does not count.
"""

from __future__ import annotations

from enum import StrEnum

MAX_ATTEMPTS = 3
MAX_ERROR_MESSAGE_CHARS = 4000
MAX_BACKOFF_SECONDS = 3600.0


class JobStatus(StrEnum):
    """Status of a stacking job (the original's five values)."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    RETRY = "retry"
    FAILED = "failed"


class AttemptOutcome(StrEnum):
    """How one claim of a job ended."""

    COMPLETED = "completed"
    FAILED = "failed"
    LEASE_EXPIRED = "lease_expired"
    RELEASED = "released"


#: Statuses in which a job still needs its raw files.
ACTIVE_STATUSES = frozenset({JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.RETRY})

ALLOWED_MOVES: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.PROCESSING}),
    JobStatus.PROCESSING: frozenset(
        {JobStatus.COMPLETED, JobStatus.RETRY, JobStatus.FAILED, JobStatus.PENDING}
    ),
    JobStatus.RETRY: frozenset({JobStatus.PROCESSING}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
}


def status_after_failure(failed_attempts: int) -> JobStatus:
    """The status a job takes after its ``failed_attempts``-th failed attempt."""
    return JobStatus.FAILED if failed_attempts >= MAX_ATTEMPTS else JobStatus.RETRY


def retry_delay_seconds(failed_attempts: int, base_seconds: float) -> float:
    """Exponential backoff before the next attempt: base, 2×base, 4×base ... capped."""
    if base_seconds <= 0:
        return 0.0
    delay: float = base_seconds * 2.0 ** max(failed_attempts - 1, 0)
    return min(delay, MAX_BACKOFF_SECONDS)
