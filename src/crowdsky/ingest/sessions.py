"""Upload sessions: start, receive files, finalize into stacking jobs, report status.

One session is one upload batch of one user (``raw_upload.php`` in the original).
Files arrive one request each, possibly in parallel; each is validated from its FITS
header before it becomes visible under its final name, stored once per content hash
(bugs 16, 17), and recorded with every header value chunking needs. Finalize groups
the session's frames (:mod:`crowdsky.ingest.chunking`), skips chunks that are too
small or already stacked (with the reason), optionally scrubs the observing site,
and queues one job per chunk through :func:`crowdsky.queue.enqueue_jobs`. A repeated
finalize answers with the same jobs. Sessions expire after inactivity, not after
creation (bug 44).

Every function takes a SQLAlchemy session that is not inside a transaction and runs
its own short transactions; files are published (hard-linked to their final name)
inside the transaction that records them and removed again if it fails.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdsky.db.models import RawFile, StackedFrame, StackingJob, UploadSession
from crowdsky.ingest import chunking, filenames, fits_headers, scrub
from crowdsky.ingest.errors import EmptySession, SessionClosed, SessionNotFound
from crowdsky.queue import NewJob, enqueue_jobs
from crowdsky.queue.states import ACTIVE_STATUSES
from crowdsky.storage.raw_store import PartialUpload, RawStore

TOKEN_BYTES = 16  # 32 hex characters, as the original


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    """The settings intake needs (taken from ``ServerSettings`` at the boundary)."""

    key_format: chunking.KeyFormat = "classic"
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
class ChunkReport:
    """A queued chunk: its job and frames."""

    chunk_key: str
    job_id: int
    frame_count: int
    object_name: str | None
    telescope: str | None
    filter_name: str | None
    exptime_s: float | None


@dataclass(frozen=True, slots=True)
class SkippedReport:
    """A chunk that got no job, and why."""

    chunk_key: str
    frame_count: int
    reason: str
    filenames: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FinalizeResult:
    """What finalize did (or, repeated, what the first finalize did)."""

    job_ids: tuple[int, ...]
    chunks: tuple[ChunkReport, ...]
    skipped: tuple[SkippedReport, ...]
    repeated: bool
    scrubbed_files: int = 0


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
        row = _load(session, user_id, token)
        _require_open(row, now, expiry_hours)
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


def finalize_session(
    session: Session,
    now: datetime,
    *,
    user_id: int,
    token: str,
    raw_store: RawStore,
    intake: IntakeSettings,
    overwrite: bool = False,
    scrub_location: bool = False,
) -> FinalizeResult:
    """Turn a session's frames into stacking jobs (idempotent).

    Raises
    ------
    SessionNotFound, SessionClosed, EmptySession
    """
    with session.begin():
        row = _load(session, user_id, token, for_update=True)
        session_id = row.id
        if row.status == "complete":
            repeated = True
        else:
            _require_open(row, now, intake.expiry_hours)
            if _count_files(session, session_id) == 0:
                raise EmptySession(
                    "the upload session has no files; upload at least one file before finalize"
                )
            # Claim the finalize first: a concurrent add_file or finalize now sees it closed.
            session.execute(
                update(UploadSession)
                .where(UploadSession.id == session_id, UploadSession.status == "uploading")
                .values(status="complete", completed_at=now, last_activity_at=now)
            )
            repeated = False
    if repeated:
        return _repeat_finalize(session, user_id, session_id, intake)
    try:
        return _run_finalize(
            session, now, user_id, session_id, raw_store, intake, overwrite, scrub_location
        )
    except BaseException:
        with session.begin():  # give the session back so the user can try again
            session.execute(
                update(UploadSession)
                .where(UploadSession.id == session_id, UploadSession.status == "complete")
                .values(status="uploading", completed_at=None)
            )
        raise


def session_status(
    session: Session, now: datetime, *, user_id: int, token: str, expiry_hours: float
) -> SessionStatus:
    """A session's state and its files (with hashes, so a client can resume)."""
    with session.begin():
        row = _load(session, user_id, token)
        status = row.status
        if status == "uploading" and _is_idle(row, now, expiry_hours):
            status = "expired"
        files = session.execute(
            select(RawFile)
            .where(RawFile.upload_session_id == row.id, RawFile.is_deleted.is_(False))
            .order_by(RawFile.id)
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


# -- internals ---------------------------------------------------------------------------


def _load(session: Session, user_id: int, token: str, *, for_update: bool = False) -> UploadSession:
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


def _require_open(row: UploadSession, now: datetime, expiry_hours: float) -> None:
    if row.status == "complete":
        raise SessionClosed(
            "upload session is already finalized; start a new session for more files"
        )
    if row.status != "uploading" or _is_idle(row, now, expiry_hours):
        raise SessionClosed(
            f"upload session expired after {expiry_hours:g} h without activity; "
            "start a new session and upload the files again"
        )


def _count_files(session: Session, session_id: int) -> int:
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
            _require_open(row, now, intake.expiry_hours)
            row.last_activity_at = now
            duplicate = _find_duplicate(session, ref, sha256)
            if duplicate is not None:
                existing, note = duplicate
                return ReceivedFile(
                    existing.id,
                    client_name,
                    existing.storage_path.rsplit("/", 1)[-1],
                    sha256,
                    existing.file_size_bytes,
                    existing.chunk_key,
                    existing.fits_date_obs,
                    existing.fits_object,
                    duplicate=True,
                    duplicate_note=note,
                )
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
            return ReceivedFile(
                existing.id,
                client_name,
                existing.storage_path.rsplit("/", 1)[-1],
                sha256,
                existing.file_size_bytes,
                existing.chunk_key,
                existing.fits_date_obs,
                existing.fits_object,
                duplicate=True,
                duplicate_note=f"same content as {existing.filename!r} in this session",
            )
    except BaseException:
        _unlink_quietly(raw_store, published)
        raise


def _find_duplicate(session: Session, ref: SessionRef, sha256: str) -> tuple[RawFile, str] | None:
    """An earlier copy of the same content: in this session, or queued or pending in another."""
    same_session = session.execute(
        select(RawFile).where(RawFile.upload_session_id == ref.id, RawFile.sha256 == sha256)
    ).scalar_one_or_none()
    if same_session is not None:
        return same_session, f"same content as {same_session.filename!r} in this session"
    elsewhere = session.execute(
        select(RawFile)
        .join(UploadSession, UploadSession.id == RawFile.upload_session_id)
        .where(
            UploadSession.user_id == ref.user_id,
            RawFile.sha256 == sha256,
            RawFile.is_deleted.is_(False),
            # waiting for a job, or in a batch that may still get one; files a
            # finalize skipped do not count, so they can be sent again with overwrite
            or_(RawFile.stacking_job_id.is_not(None), UploadSession.status == "uploading"),
        )
        .limit(1)
    ).scalar_one_or_none()
    if elsewhere is not None:
        return elsewhere, f"already uploaded as {elsewhere.filename!r} in another session"
    return None


def _unlink_quietly(raw_store: RawStore, relative: str | None) -> None:
    if relative is not None:
        with contextlib.suppress(OSError):
            raw_store.resolve(relative).unlink()


@dataclass(frozen=True, slots=True)
class _Frame:
    info: chunking.FrameInfo
    filename: str
    object_name: str | None
    storage_path: str
    has_site: bool


def _session_frames(
    session: Session, session_id: int, user_id: int, *, unattached_only: bool = False
) -> list[_Frame]:
    query = select(RawFile).where(
        RawFile.upload_session_id == session_id, RawFile.is_deleted.is_(False)
    )
    if unattached_only:
        query = query.where(RawFile.stacking_job_id.is_(None))
    frames = []
    for f in session.execute(query.order_by(RawFile.id)).scalars():
        if f.fits_date_obs is None:  # cannot happen for files received here
            continue
        frames.append(
            _Frame(
                chunking.FrameInfo(
                    frame_id=f.id,
                    date_obs=f.fits_date_obs,
                    ra_deg=f.fits_ra,
                    dec_deg=f.fits_dec,
                    user_id=user_id,
                    telescope=f.fits_telescop,
                    filter_name=f.fits_filter,
                    exptime_s=f.fits_exptime,
                ),
                f.filename,
                f.fits_object,
                f.storage_path,
                f.fits_sitelat is not None or f.fits_sitelong is not None,
            )
        )
    return frames


def _plan(frames: Sequence[_Frame], intake: IntakeSettings) -> chunking.ChunkPlan:
    return chunking.plan_chunks(
        (f.info for f in frames),
        key_format=intake.key_format,
        min_frames=intake.min_frames,
        min_total_exptime_s=intake.min_total_exptime_s,
        separation_deg=intake.separation_deg,
    )


def _run_finalize(
    session: Session,
    now: datetime,
    user_id: int,
    session_id: int,
    raw_store: RawStore,
    intake: IntakeSettings,
    overwrite: bool,
    scrub_location: bool,
) -> FinalizeResult:
    with session.begin():
        frames = _session_frames(session, session_id, user_id)
    by_id = {f.info.frame_id: f for f in frames}
    scrubbed = 0
    if scrub_location:
        for frame in frames:
            if frame.has_site:
                scrub.scrub_site_location(raw_store.resolve(frame.storage_path))
                scrubbed += 1
        with session.begin():
            session.execute(
                update(RawFile)
                .where(RawFile.upload_session_id == session_id)
                .values(fits_sitelat=None, fits_sitelong=None)
            )
    plan = _plan(frames, intake)
    skipped = [_skipped_report(s.chunk, s.reason, by_id) for s in plan.skipped]
    to_queue: list[chunking.Chunk] = []
    with session.begin():
        for chunk in plan.chunks:
            conflict = None if overwrite else _existing_work(session, user_id, session_id, chunk)
            if conflict is not None:
                skipped.append(_skipped_report(chunk, conflict, by_id))
            else:
                to_queue.append(chunk)
        for chunk in [*plan.chunks, *(s.chunk for s in plan.skipped)]:
            session.execute(
                update(RawFile)
                .where(RawFile.id.in_(chunk.frame_ids))
                .values(chunk_key=chunk.chunk_key)
            )
    new_jobs = [
        NewJob(
            user_id=user_id,
            upload_session_id=session_id,
            chunk_key=chunk.chunk_key,
            raw_file_ids=chunk.frame_ids,
            object_name=_object_name(chunk, by_id),
            telescope=chunk.telescope,
            filter_name=chunk.filter_name,
            exptime=chunk.exptime_s,
        )
        for chunk in to_queue
    ]
    job_ids = enqueue_jobs(session, now, new_jobs) if new_jobs else []
    reports = tuple(
        ChunkReport(
            job.chunk_key,
            job_id,
            len(job.raw_file_ids),
            job.object_name,
            job.telescope,
            job.filter_name,
            job.exptime,
        )
        for job, job_id in zip(new_jobs, job_ids, strict=True)
    )
    return FinalizeResult(tuple(job_ids), reports, tuple(skipped), False, scrubbed)


def _repeat_finalize(
    session: Session, user_id: int, session_id: int, intake: IntakeSettings
) -> FinalizeResult:
    """The answer of a finalize that already happened: its jobs, and what stayed out."""
    with session.begin():
        jobs = list(
            session.execute(
                select(StackingJob)
                .where(StackingJob.upload_session_id == session_id)
                .order_by(StackingJob.id)
            ).scalars()
        )
        reports = tuple(
            ChunkReport(
                j.chunk_key,
                j.id,
                j.frame_count,
                j.object_name,
                j.telescope,
                j.filter_name,
                j.exptime,
            )
            for j in jobs
        )
        leftovers = _session_frames(session, session_id, user_id, unattached_only=True)
    by_id = {f.info.frame_id: f for f in leftovers}
    plan = _plan(leftovers, intake)
    skipped = [_skipped_report(s.chunk, s.reason, by_id) for s in plan.skipped]
    skipped += [
        _skipped_report(c, "not queued at finalize: already stacked or queued", by_id)
        for c in plan.chunks
    ]
    return FinalizeResult(tuple(j.id for j in jobs), reports, tuple(skipped), True)


def _existing_work(
    session: Session, user_id: int, session_id: int, chunk: chunking.Chunk
) -> str | None:
    """Why this chunk needs no new job: a completed stack or an active job of it."""
    same_chunk = and_(
        StackingJob.user_id == user_id,
        StackingJob.chunk_key == chunk.chunk_key,
        _equal_or_both_null(StackingJob.telescope, chunk.telescope),
        _equal_or_both_null(StackingJob.filter_name, chunk.filter_name),
        _equal_or_both_null(StackingJob.exptime, chunk.exptime_s),
    )
    stack_id = session.execute(
        select(StackedFrame.id)
        .join(StackingJob, StackingJob.id == StackedFrame.stacking_job_id)
        .where(same_chunk)
        .limit(1)
    ).scalar_one_or_none()
    if stack_id is not None:
        return f"already stacked (stack {stack_id}); finalize with overwrite=1 to stack it again"
    job_id = session.execute(
        select(StackingJob.id)
        .where(
            same_chunk,
            StackingJob.upload_session_id != session_id,
            StackingJob.status.in_([str(s) for s in ACTIVE_STATUSES]),
        )
        .limit(1)
    ).scalar_one_or_none()
    if job_id is not None:
        return f"already queued as job {job_id}; finalize with overwrite=1 to queue it again"
    return None


def _equal_or_both_null(column: object, value: object) -> object:
    if value is None:
        return column.is_(None)  # type: ignore[attr-defined]
    return column == value


def _object_name(chunk: chunking.Chunk, by_id: dict[int, _Frame]) -> str | None:
    names = sorted({n for i in chunk.frame_ids if (n := by_id[i].object_name)})
    return names[0] if names else None


def _skipped_report(chunk: chunking.Chunk, reason: str, by_id: dict[int, _Frame]) -> SkippedReport:
    return SkippedReport(
        chunk.chunk_key,
        chunk.frame_count,
        reason,
        tuple(by_id[i].filename for i in chunk.frame_ids),
    )
