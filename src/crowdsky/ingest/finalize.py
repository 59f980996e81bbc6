"""Finalize: turn an upload session's frames into stacking jobs, once, atomically.

Finalize groups the session's frames (:mod:`crowdsky.ingest.chunking`), skips chunks
that are too small or whose frames are all already stacked or queued (the same files,
by SHA-256, uploaded again; with the reason, never silently), optionally scrubs the
observing site from the stored files, and queues one job per chunk. A chunk whose key
is stacked or queued already but which brings frames that work lacks (more of the
slot, uploaded later in another session) is new data: it gets its own job.

All of it is **one transaction**, holding the session's row lock: the jobs, the frames'
chunk keys, the release of the skipped frames and the move ``uploading`` →
``complete`` commit together or not at all. A crash at any instant therefore leaves
either an open session (finalize again) or a finalized one with all of its jobs; the
original's "complete, no jobs, frames deleted 6 h later" cannot happen. Concurrent
finalize calls queue on the row lock; each later one finds the session complete and
answers the first one's jobs, read after the lock, so every reply carries the same
job list. A repeated finalize answers the same way.

Frames whose stored copy is missing are marked lost (:func:`crowdsky.retention.mark_lost`)
and reported among the skipped chunks, never queued. Frames of skipped chunks are
released in the transaction (:func:`crowdsky.retention.release_skipped_frames`) and
deleted right after the commit; should the server stop in between, cleanup deletes
them. Scrubbing blanks header cards in place before the commit (idempotent, so a
finalize that rolls back and runs again is harmless); no worker can fetch a frame
before its job exists. To stack a skipped chunk after all, upload its files again
(with ``overwrite=1`` for an already stacked chunk).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import ColumnElement

from crowdsky import retention
from crowdsky.db.models import RawFile, StackedFrame, StackingJob
from crowdsky.ingest import chunking, scrub
from crowdsky.ingest import session_transitions as moves
from crowdsky.ingest.errors import EmptySession
from crowdsky.ingest.session_states import SessionStatus
from crowdsky.ingest.sessions import IntakeSettings
from crowdsky.queue import NewJob, add_jobs
from crowdsky.queue.states import ACTIVE_STATUSES
from crowdsky.storage.raw_store import RawStore

log = logging.getLogger(__name__)


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
    discarded_files: int = 0


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
    """Turn a session's frames into stacking jobs (atomic and idempotent).

    Frames of skipped chunks are deleted once the jobs are committed (see the module
    docstring); a repeated finalize still lists them in ``skipped``.

    Raises
    ------
    SessionNotFound, SessionClosed, EmptySession
    """
    with session.begin():
        row = moves.lock_session(session, user_id, token)
        session_id = row.id
        if row.status == SessionStatus.COMPLETE:
            return _repeat_finalize(session, user_id, session_id, intake)
        moves.require_open(row, now, intake.expiry_hours)
        result, freed = _run_finalize(
            session, now, user_id, session_id, raw_store, intake, overwrite, scrub_location
        )
        moves.mark_finalized(session, session_id, now)
    # Committed: the jobs exist and the session is closed, whatever happens from here.
    # A frame this fails to delete is deleted by cleanup.
    try:
        discarded = retention.delete_freed(session, raw_store, freed).files
    except Exception:
        log.warning(
            "finalize.discard_failed: session %d; cleanup will delete its skipped frames",
            session_id,
            exc_info=True,
        )
        discarded = 0
    return replace(result, discarded_files=discarded)


# -- internals ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Frame:
    info: chunking.FrameInfo
    filename: str
    object_name: str | None
    storage_path: str
    has_site: bool
    sha256: str


def _session_frames(
    session: Session, session_id: int, user_id: int, *, skipped_only: bool = False
) -> list[_Frame]:
    """The session's stored frames, or (``skipped_only``) those a finalize gave no job."""
    query = select(RawFile).where(RawFile.upload_session_id == session_id)
    if skipped_only:  # deleted or not: a repeated finalize reports them as the first did
        query = query.where(RawFile.stacking_job_id.is_(None))
    else:
        query = query.where(RawFile.is_deleted.is_(False), RawFile.lost_at.is_(None))
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
                f.sha256,
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
) -> tuple[FinalizeResult, retention.FreedFiles]:
    """Queue the jobs inside the caller's transaction; the result and the freed frames."""
    stored = _session_frames(session, session_id, user_id)
    if not stored:
        raise EmptySession(
            "the upload session has no files; upload at least one file before finalize"
        )
    missing = [f for f in stored if not raw_store.exists(f.storage_path)]
    retention.mark_lost(session, now, [f.info.frame_id for f in missing])
    frames = [f for f in stored if f not in missing]
    by_id = {f.info.frame_id: f for f in stored}
    plan = _plan(frames, intake)
    skipped = [_skipped_report(s.chunk, s.reason, by_id) for s in plan.skipped]
    if missing:
        skipped.append(
            SkippedReport(
                "",
                len(missing),
                "the server lost these stored files (missing on disk); upload them again",
                tuple(f.filename for f in missing),
            )
        )
    to_queue: list[chunking.Chunk] = []
    for chunk in plan.chunks:
        conflict = (
            None
            if overwrite
            else _existing_work(
                session, user_id, session_id, chunk, {by_id[i].sha256 for i in chunk.frame_ids}
            )
        )
        if conflict is not None:
            skipped.append(_skipped_report(chunk, conflict, by_id))
        else:
            to_queue.append(chunk)
    for chunk in [*plan.chunks, *(s.chunk for s in plan.skipped)]:
        session.execute(
            update(RawFile).where(RawFile.id.in_(chunk.frame_ids)).values(chunk_key=chunk.chunk_key)
        )
    queued_ids = {i for chunk in to_queue for i in chunk.frame_ids}
    scrubbed = 0
    if scrub_location:  # before the jobs commit: no worker may fetch an unscrubbed frame
        for frame_id in sorted(queued_ids):  # the others are deleted, never served
            if by_id[frame_id].has_site:
                raw_store.edit_file(by_id[frame_id].storage_path, scrub.scrub_site_location)
                scrubbed += 1
        session.execute(
            update(RawFile)
            .where(RawFile.upload_session_id == session_id)
            .values(fits_sitelat=None, fits_sitelong=None)
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
    job_ids = add_jobs(session, now, new_jobs) if new_jobs else []
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
    jobless = [f.info.frame_id for f in frames if f.info.frame_id not in queued_ids]
    freed = retention.release_skipped_frames(session, session_id, jobless)
    result = FinalizeResult(tuple(job_ids), reports, tuple(skipped), False, scrubbed)
    return result, freed


def _repeat_finalize(
    session: Session, user_id: int, session_id: int, intake: IntakeSettings
) -> FinalizeResult:
    """The answer of a finalize that already happened: its jobs, and what stayed out.

    Runs in the caller's transaction, after the session's row lock: the jobs read are
    those the first finalize committed.
    """
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
    leftovers = _session_frames(session, session_id, user_id, skipped_only=True)
    by_id = {f.info.frame_id: f for f in leftovers}
    plan = _plan(leftovers, intake)
    skipped = [_skipped_report(s.chunk, s.reason, by_id) for s in plan.skipped]
    reason = "not queued at finalize: copies of files already stacked or queued"
    skipped += [_skipped_report(c, reason, by_id) for c in plan.chunks]
    return FinalizeResult(tuple(j.id for j in jobs), reports, tuple(skipped), True)


def _existing_work(
    session: Session, user_id: int, session_id: int, chunk: chunking.Chunk, hashes: set[str]
) -> str | None:
    """Why this chunk needs no new job: a completed stack or an active job of the same
    chunk already has every one of its files (``hashes``, their SHA-256).

    The key alone is not enough: it names a 15-minute slot and a pointing, not the
    frames. More frames of a slot, uploaded later in another session, are new data and
    get a job of their own; only copies of files already stacked or queued are skipped
    (and then deleted).
    """

    def has_every_file(job_id: int) -> bool:
        held = session.execute(select(RawFile.sha256).where(RawFile.stacking_job_id == job_id))
        return hashes <= set(held.scalars())

    same_chunk = and_(
        StackingJob.user_id == user_id,
        StackingJob.chunk_key == chunk.chunk_key,
        _equal_or_both_null(StackingJob.telescope, chunk.telescope),
        _equal_or_both_null(StackingJob.filter_name, chunk.filter_name),
        _equal_or_both_null(StackingJob.exptime, chunk.exptime_s),
    )
    stacks = session.execute(
        select(StackedFrame.id, StackingJob.id)
        .join(StackingJob, StackingJob.id == StackedFrame.stacking_job_id)
        .where(same_chunk)
        .order_by(StackedFrame.id)
    ).all()
    for stack_id, job_id in stacks:
        if has_every_file(job_id):
            return (
                f"already stacked (stack {stack_id}) from these same files; to stack it "
                "again, upload the files again and finalize with overwrite=1"
            )
    active = session.execute(
        select(StackingJob.id)
        .where(
            same_chunk,
            StackingJob.upload_session_id != session_id,
            StackingJob.status.in_([str(s) for s in ACTIVE_STATUSES]),
        )
        .order_by(StackingJob.id)
    ).scalars()
    for job_id in active:
        if has_every_file(job_id):
            return (
                f"already queued as job {job_id} with these same files; to queue it again, "
                "upload the files again and finalize with overwrite=1"
            )
    return None


def _equal_or_both_null(column: InstrumentedAttribute[Any], value: object) -> ColumnElement[bool]:
    """``column = value``, or ``column IS NULL`` when the value is missing."""
    if value is None:
        return column.is_(None)
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
