"""Upload-session statuses and the moves between them: the sessions' rules in one place.

::

    start ──▶ uploading ──finalize──▶ complete     (jobs created in the same commit)
                 │
                 └──idle for UPLOAD_EXPIRY_HOURS──▶ expired   (cleanup; files released)

``complete`` and ``expired`` are final. The original moved a failed finalize back
from ``complete`` to ``uploading``; here finalize marks the session and creates its
jobs in one transaction, so there is nothing to reopen: a finalize that fails rolls
back and the session simply stays ``uploading``. Every move is made by
:mod:`crowdsky.ingest.session_transitions`, compare-and-set like the job queue's.
"""

from __future__ import annotations

from enum import StrEnum


class SessionStatus(StrEnum):
    """Status of an upload session (the original's values; ``failed`` was never set)."""

    UPLOADING = "uploading"
    COMPLETE = "complete"
    EXPIRED = "expired"


ALLOWED_MOVES: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.UPLOADING: frozenset({SessionStatus.COMPLETE, SessionStatus.EXPIRED}),
    SessionStatus.COMPLETE: frozenset(),
    SessionStatus.EXPIRED: frozenset(),
}

#: Statuses in which a session still accepts files and may be finalized.
OPEN_STATUSES = frozenset({SessionStatus.UPLOADING})


def is_allowed_move(current: str, target: str) -> bool:
    """Whether a session may move from ``current`` to ``target`` (unknown values: no)."""
    try:
        return SessionStatus(target) in ALLOWED_MOVES[SessionStatus(current)]
    except ValueError:
        return False
