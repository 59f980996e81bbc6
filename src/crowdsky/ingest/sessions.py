"""Upload sessions: start, receive files, finalize into stacking jobs, report status.

One session is one upload batch of one user (``raw_upload.php`` in the original).
Files arrive one request each, possibly in parallel; each is validated from its FITS
header before it becomes visible under its final name, stored once per session and
content hash (bugs 16, 17), and recorded with every header value chunking needs.
Finalize (:mod:`crowdsky.ingest.finalize`) groups the session's frames into jobs.
Sessions expire after inactivity, not after creation (bug 44).

Deduplication stays inside one session on purpose. A frame whose content another
session of the same user also holds is stored again here: that other session may never
be finalized (client state lost, another machine) and then expires with its files, or
its finalize may skip the chunk; answering "duplicate" would leave the frame in no job
and lose it. Copies finalized in two sessions still make one stack of a chunk: the
second finalize finds the chunk (same key) already queued or stacked, skips it and
deletes its copies.

The status call lists every file the session received, including the ones already
stacked or skipped and deleted, so a client that resumes from it (``crowdsky upload``)
never sends a file of its session twice.

Every function takes a SQLAlchemy session that is not inside a transaction and runs
its own short transactions; files are published (hard-linked to their final name)
inside the transaction that records them and removed again if it fails.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdsky.db.models import RawFile, StackingJob, UploadSession
from crowdsky.ingest import chunking, filenames, fits_headers
from crowdsky.ingest.errors import SessionClosed, SessionNotFound
from crowdsky.storage.raw_store import PartialUpload, RawStore

TOKEN_BYTES = 16  # 32 hex characters, as the original


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    """The settings intake needs (taken from ``ServerSettings`` at the boundary)."""

    key_format: chunking.KeyFormat = "healpix"
    min_frames: int = 3
    min_total_exptime_s: float = 0.0
    separation_deg: float = chunking.DEFAULT_SEPARATION_DEG
    expiry_hours: float = 24.0


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
    """Whether the server still holds the file (False once stacked or skipped)."""


@dataclass(frozen=True, slots=True)
class SessionStatus:
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


def start_session(session: Session, now: datetime, *, user_id: int, raw_store: RawStore) -> str:
    """Open a new upload session for a user; returns its token (32 hex characters)."""
    token = secrets.token_hex(TOKEN_BYTES)
    relative = raw_store.session_dir(user_id, token)
    raw_store.resolve(relative).mkdir(parents=True, exist_ok=True)
    with session.begin():
        session.add(
            UploadSession(
                user_id=user_id,
                session_token=token,
                status="uploading",
                storage_path=relative,
                created_at=now,
                last_activity_at=now,
            )
        )
    return token


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
        require_open(row, now, expiry_hours)
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
        return _record_file(
            session, now, ref, partial, sha256, client_name, header, raw_store, intake
        )
    finally:
        partial.discard()


def session_status(
    session: Session, now: datetime, *, user_id: int, token: str, expiry_hours: float
) -> SessionStatus:
    """A session's state and every file it received (with hashes, so a client can resume).

    Files whose stored copy is gone (stacked, or skipped at finalize) are listed too:
    the session has them, and a client must not send them to it again.
    """
    with session.begin():
        row = load_row(session, user_id, token)
        status = row.status
        if status == "uploading" and _is_idle(row, now, expiry_hours):
            status = "expired"
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
                not f.is_deleted,
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
        return SessionStatus(
            token=row.session_token,
            status=status,
            created_at=row.created_at,
            last_activity_at=row.last_activity_at,
            completed_at=row.completed_at,
            file_count=row.file_count,
            total_size_bytes=row.total_size_bytes,
            files=file_list,
            job_ids=job_ids,
        )


# -- shared with ingest.finalize, then internals ----------------------------------------


def load_row(
    session: Session, user_id: int, token: str, *, for_update: bool = False
) -> UploadSession:
    """The caller's session row (package-internal: sessions and finalize share it)."""
    query = select(UploadSession).where(
        UploadSession.session_token == token, UploadSession.user_id == user_id
    )
    if for_update:
        query = query.with_for_update()
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        raise SessionNotFound(
            "upload session not found: check the session_token (sessions belong to the "
            "user who started them)"
        )
    return row


def _is_idle(row: UploadSession, now: datetime, expiry_hours: float) -> bool:
    return row.last_activity_at < now - timedelta(hours=expiry_hours)


def require_open(row: UploadSession, now: datetime, expiry_hours: float) -> None:
    if row.status == "complete":
        raise SessionClosed(
            "upload session is already finalized; start a new session for more files"
        )
    if row.status != "uploading" or _is_idle(row, now, expiry_hours):
        raise SessionClosed(
            f"upload session expired after {expiry_hours:g} h without activity; "
            "start a new session and upload the files again"
        )


def count_files(session: Session, session_id: int) -> int:
    return int(
        session.execute(
            select(func.count())
            .select_from(RawFile)
            .where(RawFile.upload_session_id == session_id, RawFile.is_deleted.is_(False))
        ).scalar_one()
    )


def _record_file(
    session: Session,
    now: datetime,
    ref: SessionRef,
    partial: PartialUpload,
    sha256: str,
    client_name: str,
    header: fits_headers.FrameHeader,
    raw_store: RawStore,
    intake: IntakeSettings,
) -> ReceivedFile:
    provisional_key = chunking.chunk_key(
        header.date_obs, header.ra_deg, header.dec_deg, intake.key_format
    )
    published: str | None = None
    try:
        with session.begin():
            row = session.execute(
                select(UploadSession).where(UploadSession.id == ref.id).with_for_update()
            ).scalar_one()
            require_open(row, now, intake.expiry_hours)
            row.last_activity_at = now
            duplicate = _find_duplicate(session, ref, sha256)
            if duplicate is not None:
                existing, note = duplicate
                return _already_stored(existing, client_name, note)
            published = raw_store.publish(partial, filenames.storage_name(client_name))
            raw = RawFile(
                upload_session_id=ref.id,
                filename=client_name,
                storage_path=published,
                file_size_bytes=partial.size,
                sha256=sha256,
                fits_date_obs=header.date_obs,
                fits_object=header.object_name,
                fits_exptime=header.exptime_s,
                fits_ra=header.ra_deg,
                fits_dec=header.dec_deg,
                fits_filter=header.filter_name,
                fits_telescop=header.telescop,
                fits_instrume=header.instrume,
                fits_gain=header.gain,
                fits_ccd_temp=header.ccd_temp_c,
                fits_bayerpat=header.bayerpat,
                fits_eqmode=header.eqmode,
                fits_sitelat=header.site_lat_deg,
                fits_sitelong=header.site_long_deg,
                image_width=header.width,
                image_height=header.height,
                chunk_key=provisional_key,
                created_at=now,
            )
            session.add(raw)
            row.file_count = row.file_count + 1
            row.total_size_bytes = row.total_size_bytes + partial.size
            if row.object_name is None:
                row.object_name = header.object_name
            if row.ra_deg is None and header.ra_deg is not None:
                row.ra_deg, row.dec_deg = header.ra_deg, header.dec_deg
            session.flush()
            return ReceivedFile(
                raw.id,
                client_name,
                published.rsplit("/", 1)[-1],
                sha256,
                partial.size,
                provisional_key,
                header.date_obs,
                header.object_name,
                duplicate=False,
            )
    except IntegrityError:
        # the same content arrived concurrently in another request of this session
        _unlink_quietly(raw_store, published)
        with session.begin():
            existing = session.execute(
                select(RawFile).where(RawFile.upload_session_id == ref.id, RawFile.sha256 == sha256)
            ).scalar_one()
            return _already_stored(
                existing, client_name, f"same content as {existing.filename!r} in this session"
            )
    except BaseException:
        _unlink_quietly(raw_store, published)
        raise


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
        with contextlib.suppress(OSError):
            raw_store.resolve(relative).unlink()
