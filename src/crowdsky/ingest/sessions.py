"""Upload sessions: check one is open, receive its files, report its status.

One session is one upload batch of one user. Each file is validated from its FITS
header before it gets its final name, stored once per session and content hash, and
recorded with every header value chunking needs; sessions expire after inactivity.
Deduplication stays inside one session on purpose: another session holding the same
content may never be finalized, and answering "duplicate" would lose the frame. The
status call lists every file received, so a resuming client never sends one twice.

Functions run their own short transactions; status moves are
:mod:`crowdsky.ingest.session_transitions`, finalize :mod:`crowdsky.ingest.finalize`.
A file is published inside the transaction that records it and removed if that fails
(cleanup removes a file left without a row).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdsky.db.models import RawFile, StackingJob, UploadSession
from crowdsky.ingest import chunking, filenames, fits_headers
from crowdsky.ingest import session_transitions as moves
from crowdsky.ingest.errors import SessionNotFound
from crowdsky.ingest.session_states import SessionStatus
from crowdsky.storage.raw_store import PartialUpload, RawStore


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    """The settings intake needs (taken from ``ServerSettings`` at the boundary)."""

    key_format: chunking.KeyFormat = "healpix"
    min_frames: int = 3
    min_total_exptime_s: float = 0.0
    separation_deg: float = chunking.DEFAULT_SEPARATION_DEG
    expiry_hours: float = 24.0
    max_open_sessions: int = moves.DEFAULT_MAX_OPEN_SESSIONS


@dataclass(frozen=True, slots=True)
class SessionRef:
    """An open session the caller may write to."""

    id: int
    user_id: int
    token: str
    storage_path: str


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """The outcome of one file upload."""

    file_id: int
    filename: str
    stored_as: str
    sha256: str
    size_bytes: int
    chunk_key: str | None
    date_obs: datetime | None
    object_name: str | None
    duplicate: bool
    duplicate_note: str | None = None


@dataclass(frozen=True, slots=True)
class FileStatus:
    """One file of a session as the status call lists it."""

    file_id: int
    filename: str
    sha256: str
    size_bytes: int
    chunk_key: str | None
    date_obs: datetime | None
    object_name: str | None
    job_id: int | None
    stored: bool
    """Whether the server still holds the file (False once stacked or skipped, or lost)."""


@dataclass(frozen=True, slots=True)
class SessionReport:
    """A session and its files."""

    token: str
    status: str
    created_at: datetime
    last_activity_at: datetime
    completed_at: datetime | None
    file_count: int
    total_size_bytes: int
    files: tuple[FileStatus, ...]
    job_ids: tuple[int, ...]


def open_session(
    session: Session, now: datetime, *, user_id: int, token: str, expiry_hours: float
) -> SessionRef:
    """The caller's session, if it still accepts files.

    Raises
    ------
    SessionNotFound
        No such token, or it belongs to another user (indistinguishable on purpose).
    SessionClosed
        Finalized, or expired (idle longer than ``expiry_hours``).
    """
    with session.begin():
        row = load_row(session, user_id, token)
        moves.require_open(row, now, expiry_hours)
        return SessionRef(row.id, row.user_id, row.session_token, row.storage_path)


def receive_file(
    session: Session,
    now: datetime,
    *,
    ref: SessionRef,
    partial: PartialUpload,
    sha256: str,
    client_name: str,
    raw_store: RawStore,
    intake: IntakeSettings,
) -> ReceivedFile:
    """Validate a fully received file and record it, or refuse it.

    The partial is always consumed: published under a safe name, or removed.

    Raises
    ------
    InvalidFits
        The file is not a usable raw frame (the partial is removed).
    SessionClosed
        The session was finalized or expired meanwhile.
    """
    try:
        header = fits_headers.read_frame_header(partial.path, client_name, now=now)
        arrival = _Arrival(partial, sha256, client_name, header)
        return _record_file(session, now, ref, arrival, raw_store, intake)
    finally:
        partial.discard()


def session_status(
    session: Session, now: datetime, *, user_id: int, token: str, expiry_hours: float
) -> SessionReport:
    """A session's state and every file it received (with hashes, so a client can resume).

    Files whose stored copy is gone (stacked, or skipped at finalize) are listed too:
    the session has them, and a client must not send them to it again.
    """
    with session.begin():
        row = load_row(session, user_id, token)
        status = row.status
        if status == SessionStatus.UPLOADING and moves.is_idle(row, now, expiry_hours):
            status = SessionStatus.EXPIRED
        files = session.execute(
            select(RawFile).where(RawFile.upload_session_id == row.id).order_by(RawFile.id)
        ).scalars()
        file_list = tuple(
            FileStatus(
                f.id,
                f.filename,
                f.sha256,
                f.file_size_bytes,
                f.chunk_key,
                f.fits_date_obs,
                f.fits_object,
                f.stacking_job_id,
                not f.is_deleted and f.lost_at is None,
            )
            for f in files
        )
        job_ids = tuple(
            session.execute(
                select(StackingJob.id)
                .where(StackingJob.upload_session_id == row.id)
                .order_by(StackingJob.id)
            ).scalars()
        )
        return SessionReport(
            token=row.session_token,
            status=str(status),
            created_at=row.created_at,
            last_activity_at=row.last_activity_at,
            completed_at=row.completed_at,
            file_count=row.file_count,
            total_size_bytes=row.total_size_bytes,
            files=file_list,
            job_ids=job_ids,
        )


# -- internals ----------------------------------------------------------------------------


def load_row(session: Session, user_id: int, token: str) -> UploadSession:
    """The caller's session row, unlocked (reads only).

    Raises
    ------
    SessionNotFound
        No such token, or it belongs to another user (indistinguishable on purpose).
    """
    row = session.execute(
        select(UploadSession).where(
            UploadSession.session_token == token, UploadSession.user_id == user_id
        )
    ).scalar_one_or_none()
    if row is None:
        raise SessionNotFound(
            "upload session not found: check the session_token (sessions belong to the "
            "user who started them)"
        )
    return row


def count_files(session: Session, session_id: int) -> int:
    return int(
        session.execute(
            select(func.count())
            .select_from(RawFile)
            .where(RawFile.upload_session_id == session_id, RawFile.is_deleted.is_(False))
        ).scalar_one()
    )


@dataclass(frozen=True, slots=True)
class _Arrival:
    """A fully received, validated file on its way to being recorded."""

    partial: PartialUpload
    sha256: str
    client_name: str
    header: fits_headers.FrameHeader


def _record_file(
    session: Session,
    now: datetime,
    ref: SessionRef,
    arrival: _Arrival,
    raw_store: RawStore,
    intake: IntakeSettings,
) -> ReceivedFile:
    """Publish and record a file in one transaction, or answer the copy already stored."""
    header = arrival.header
    key = chunking.chunk_key(header.date_obs, header.ra_deg, header.dec_deg, intake.key_format)
    published: str | None = None
    try:
        with session.begin():
            row = moves.lock_session_by_id(session, ref.id)
            moves.require_open(row, now, intake.expiry_hours)
            duplicate = _find_duplicate(session, ref, arrival.sha256)
            if duplicate is not None:
                moves.touch(session, row, now)
                existing, note = duplicate
                return _already_stored(existing, arrival.client_name, note)
            published = raw_store.publish(
                arrival.partial, filenames.storage_name(arrival.client_name)
            )
            raw = _raw_file_row(ref, arrival, published, key, now)
            session.add(raw)
            session.flush()
            moves.record_file(
                session,
                row,
                now,
                size_bytes=arrival.partial.size,
                object_name=header.object_name,
                ra_deg=header.ra_deg,
                dec_deg=header.dec_deg,
            )
            return ReceivedFile(
                raw.id,
                arrival.client_name,
                published.rsplit("/", 1)[-1],
                arrival.sha256,
                arrival.partial.size,
                key,
                header.date_obs,
                header.object_name,
                duplicate=False,
            )
    except IntegrityError:
        # the same content arrived concurrently in another request of this session
        _unlink_quietly(raw_store, published)
        with session.begin():
            existing = session.execute(
                select(RawFile).where(
                    RawFile.upload_session_id == ref.id, RawFile.sha256 == arrival.sha256
                )
            ).scalar_one()
            return _already_stored(
                existing,
                arrival.client_name,
                f"same content as {existing.filename!r} in this session",
            )
    except BaseException:
        _unlink_quietly(raw_store, published)
        raise


def _raw_file_row(
    ref: SessionRef, arrival: _Arrival, published: str, chunk_key: str, now: datetime
) -> RawFile:
    """The ``raw_files`` row of a published file, with every header value chunking needs
    (the chunk key is provisional until finalize)."""
    return RawFile(
        upload_session_id=ref.id,
        filename=arrival.client_name,
        storage_path=published,
        file_size_bytes=arrival.partial.size,
        sha256=arrival.sha256,
        chunk_key=chunk_key,
        created_at=now,
        **arrival.header.raw_file_columns(),
    )


def _find_duplicate(session: Session, ref: SessionRef, sha256: str) -> tuple[RawFile, str] | None:
    """An earlier copy of the same content in this session (see the module docstring)."""
    same_session = session.execute(
        select(RawFile).where(RawFile.upload_session_id == ref.id, RawFile.sha256 == sha256)
    ).scalar_one_or_none()
    if same_session is not None:
        return same_session, f"same content as {same_session.filename!r} in this session"
    return None


def _already_stored(existing: RawFile, client_name: str, note: str) -> ReceivedFile:
    """The answer for a file whose content the session already has."""
    return ReceivedFile(
        existing.id,
        client_name,
        existing.storage_path.rsplit("/", 1)[-1],
        existing.sha256,
        existing.file_size_bytes,
        existing.chunk_key,
        existing.fits_date_obs,
        existing.fits_object,
        duplicate=True,
        duplicate_note=note,
    )


def _unlink_quietly(raw_store: RawStore, relative: str | None) -> None:
    if relative is not None:
        with contextlib.suppress(Exception):  # an error path: the file may be gone already
            raw_store.delete_files([relative])
