"""The upload-session state machine: every change of a session's status happens here.

Start, receive a file, finalize and expire, one function each; the moves allowed are
:data:`crowdsky.ingest.session_states.ALLOWED_MOVES`. Every write is compare-and-set
(``WHERE id = :id AND status = :expected`` with a row-count check), as in
:mod:`crowdsky.queue.transitions`: a late or concurrent call changes nothing and
says why, and a move outside the table raises :class:`IllegalSessionMove`.

``start_session`` and ``expire_idle_sessions`` run their own transaction. The others
run inside the caller's transaction, because their move must commit together with
the caller's other writes: a file's row with the session's counters, and above all
the ``complete`` status with every job of the finalize (:mod:`crowdsky.ingest.finalize`).
The caller first locks the row (:func:`lock_session`): ``FOR UPDATE`` on PostgreSQL
and MariaDB, the database write lock (``BEGIN IMMEDIATE``) on SQLite.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from crowdsky import retention
from crowdsky.db.engine import affected_rows
from crowdsky.db.models import UploadSession, User
from crowdsky.ingest.errors import (
    IllegalSessionMove,
    SessionClosed,
    SessionNotFound,
    TooManyOpenSessions,
)
from crowdsky.ingest.session_states import SessionStatus, is_allowed_move
from crowdsky.storage.raw_store import RawStore

TOKEN_BYTES = 16  # 32 hex characters, as the original
#: Open (uploading, not idle) sessions one user may hold at once.
DEFAULT_MAX_OPEN_SESSIONS = 20
EXPIRE_BATCH = 500


@dataclass(frozen=True, slots=True)
class ExpiredSessions:
    """What one expiry pass did: sessions expired, files and folders they released."""

    session_ids: tuple[int, ...]
    freed: retention.FreedFiles


def start_session(
    session: Session,
    now: datetime,
    *,
    user_id: int,
    raw_store: RawStore,
    max_open_sessions: int = DEFAULT_MAX_OPEN_SESSIONS,
    expiry_hours: float = 24.0,
) -> str:
    """Open a new upload session for a user; returns its token (32 hex characters).

    The user's row is locked while the open sessions are counted, so two concurrent
    starts cannot both pass the limit. A session idle past ``expiry_hours`` no longer
    counts (it can take no more files).

    Raises
    ------
    TooManyOpenSessions
        The user already has ``max_open_sessions`` open sessions.
    """
    token = secrets.token_hex(TOKEN_BYTES)
    relative = raw_store.session_dir(user_id, token)
    # The folder first: a crash before the commit leaves an empty folder without a
    # session, which cleanup removes; never a session without its folder.
    raw_store.create_dir(relative)
    with session.begin():
        session.execute(select(User.id).where(User.id == user_id).with_for_update())
        open_now = session.execute(
            select(func.count())
            .select_from(UploadSession)
            .where(
                UploadSession.user_id == user_id,
                UploadSession.status == SessionStatus.UPLOADING,
                UploadSession.last_activity_at >= now - timedelta(hours=expiry_hours),
            )
        ).scalar_one()
        if open_now >= max_open_sessions:
            raise TooManyOpenSessions(
                f"you already have {open_now} open upload sessions (the limit is "
                f"{max_open_sessions}); finalize one, or wait until an unused one expires "
                f"after {expiry_hours:g} h without activity"
            )
        session.add(
            UploadSession(
                user_id=user_id,
                session_token=token,
                status=SessionStatus.UPLOADING,
                storage_path=relative,
                created_at=now,
                last_activity_at=now,
            )
        )
    return token


def lock_session(session: Session, user_id: int, token: str) -> UploadSession:
    """The caller's session row, locked until the caller's transaction ends.

    Raises
    ------
    SessionNotFound
        No such token, or it belongs to another user (indistinguishable on purpose).
    """
    row = session.execute(
        select(UploadSession)
        .where(UploadSession.session_token == token, UploadSession.user_id == user_id)
        .with_for_update()
    ).scalar_one_or_none()
    if row is None:
        raise SessionNotFound(
            "upload session not found: check the session_token (sessions belong to the "
            "user who started them)"
        )
    return row


def lock_session_by_id(session: Session, session_id: int) -> UploadSession:
    """A session row by id, locked until the caller's transaction ends."""
    return session.execute(
        select(UploadSession).where(UploadSession.id == session_id).with_for_update()
    ).scalar_one()


def is_idle(row: UploadSession, now: datetime, expiry_hours: float) -> bool:
    """Whether the session saw no activity for ``expiry_hours`` (it is as good as expired)."""
    return row.last_activity_at < now - timedelta(hours=expiry_hours)


def require_open(row: UploadSession, now: datetime, expiry_hours: float) -> None:
    """Raise :class:`SessionClosed` unless the session still takes files and finalize."""
    if row.status == SessionStatus.COMPLETE:
        raise SessionClosed(
            "upload session is already finalized; start a new session for more files"
        )
    if row.status != SessionStatus.UPLOADING or is_idle(row, now, expiry_hours):
        raise SessionClosed(
            f"upload session expired after {expiry_hours:g} h without activity; "
            "start a new session and upload the files again"
        )


def record_file(
    session: Session,
    row: UploadSession,
    now: datetime,
    *,
    size_bytes: int,
    object_name: str | None,
    ra_deg: float | None,
    dec_deg: float | None,
) -> None:
    """Count a received file in its (locked, open) session, in the caller's transaction."""
    values: dict[str, object] = {
        "file_count": UploadSession.file_count + 1,
        "total_size_bytes": UploadSession.total_size_bytes + size_bytes,
        "last_activity_at": now,
    }
    if row.object_name is None and object_name is not None:
        values["object_name"] = object_name
    if row.ra_deg is None and ra_deg is not None:
        values["ra_deg"], values["dec_deg"] = ra_deg, dec_deg
    _move(session, row.id, SessionStatus.UPLOADING, SessionStatus.UPLOADING, values)


def touch(session: Session, row: UploadSession, now: datetime) -> None:
    """Record activity (a duplicate file) on a locked, open session."""
    _move(
        session,
        row.id,
        SessionStatus.UPLOADING,
        SessionStatus.UPLOADING,
        {"last_activity_at": now},
    )


def mark_finalized(session: Session, session_id: int, now: datetime) -> None:
    """``uploading`` → ``complete``, in the transaction that creates the session's jobs."""
    _move(
        session,
        session_id,
        SessionStatus.UPLOADING,
        SessionStatus.COMPLETE,
        {"completed_at": now, "last_activity_at": now},
    )


def expire_idle_sessions(
    session: Session, now: datetime, *, expiry_hours: float
) -> ExpiredSessions:
    """``uploading`` → ``expired`` for sessions idle longer than ``expiry_hours``.

    Their files are released (marked deleted) in the same transaction; the caller
    deletes them after it returns (:func:`crowdsky.retention.delete_freed`). Sessions
    locked by a running upload or finalize are skipped until the next pass.
    """
    idle_before = now - timedelta(hours=expiry_hours)
    with session.begin():
        stale = list(
            session.execute(
                select(UploadSession.id)
                .where(
                    UploadSession.status == SessionStatus.UPLOADING,
                    UploadSession.last_activity_at < idle_before,
                )
                .order_by(UploadSession.id)
                .limit(EXPIRE_BATCH)
                .with_for_update(skip_locked=True)
            ).scalars()
        )
        for session_id in stale:
            _move(session, session_id, SessionStatus.UPLOADING, SessionStatus.EXPIRED, {})
        freed = retention.release_expired_sessions(session, stale)
    return ExpiredSessions(tuple(stale), freed)


def _move(
    session: Session,
    session_id: int,
    expected: SessionStatus,
    target: SessionStatus,
    values: dict[str, object],
) -> None:
    """Compare-and-set on (id, status), refusing a move outside the table."""
    if target != expected and not is_allowed_move(expected, target):
        raise IllegalSessionMove(
            f"upload session {session_id}: {expected} → {target} is not an allowed move"
        )
    changed = affected_rows(
        session.execute(
            update(UploadSession)
            .where(UploadSession.id == session_id, UploadSession.status == expected)
            .values(status=target, **values)
            .execution_options(synchronize_session=False)
        )
    )
    if changed != 1:
        raise SessionClosed(
            f"upload session {session_id} is no longer {expected} (changed concurrently)"
        )
