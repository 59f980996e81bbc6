"""Finalize: turn an upload session's frames into stacking jobs, once.

Finalize groups the session's frames (:mod:`crowdsky.ingest.chunking`), skips chunks
that are too small or whose frames are all already stacked or queued (the same files,
by SHA-256, uploaded again; with the reason, never silently),
optionally scrubs the observing site from the stored files, and queues one job per
chunk through :func:`crowdsky.queue.enqueue_jobs`. The session is closed first, so a
concurrent upload or finalize sees it closed; if queueing fails the session is
reopened. A repeated finalize answers with what the first one did. A chunk whose
key is stacked or queued already but which brings frames that work lacks (more of
the slot, uploaded later in another session) is new data: it gets its own job.

Frames of skipped chunks are deleted as soon as the jobs are queued: nothing can use
them any more (a finalized session takes no files and is never finalized again), and
the answer has already told the user which files got no job and why (too few frames,
or copies of files already stacked or queued); to stack them after all, upload them
again (with ``overwrite=1`` for an already stacked chunk). A
session folder without jobs is removed at once; otherwise the last of its jobs to
complete removes it. Should the server stop between queueing and deleting, cleanup
deletes the leftovers later (``crowdsky.cleanup``). Frames of queued jobs are never
touched here.
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

from crowdsky.db.models import RawFile, StackedFrame, StackingJob, UploadSession
from crowdsky.ingest import chunking, scrub, sessions
from crowdsky.ingest.errors import EmptySession
from crowdsky.ingest.sessions import IntakeSettings
from crowdsky.queue import NewJob, enqueue_jobs
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
    """Turn a session's frames into stacking jobs (idempotent).

    Frames of skipped chunks are deleted once the jobs are queued (see the module
    docstring); a repeated finalize still lists them in ``skipped``.

    Raises
    ------
    SessionNotFound, SessionClosed, EmptySession
    """
    with session.begin():
        row = sessions.load_row(session, user_id, token, for_update=True)
        session_id = row.id
        if row.status == "complete":
            repeated = True
        else:
            sessions.require_open(row, now, intake.expiry_hours)
            if sessions.count_files(session, session_id) == 0:
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
        result, jobless = _run_finalize(
            session, now, user_id, session_id, raw_store, intake, overwrite, scrub_location
        )
    except BaseException:
        with session.begin():  # no job was queued: give the session back to try again
            session.execute(
                update(UploadSession)
                .where(UploadSession.id == session_id, UploadSession.status == "complete")
                .values(status="uploading", completed_at=None)
            )
        raise
    # The jobs are queued and the session stays closed whatever happens from here: a
    # frame this fails to delete is deleted by cleanup after its grace period.
    try:
        discarded = _discard_skipped(session, session_id, jobless, raw_store)
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
        query = query.where(RawFile.is_deleted.is_(False))
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
) -> tuple[FinalizeResult, list[int]]:
    """Queue the jobs; return the result and the frames that got none."""
    with session.begin():
        frames = _session_frames(session, session_id, user_id)
    by_id = {f.info.frame_id: f for f in frames}
    plan = _plan(frames, intake)
    skipped = [_skipped_report(s.chunk, s.reason, by_id) for s in plan.skipped]
    to_queue: list[chunking.Chunk] = []
    with session.begin():
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
                update(RawFile)
                .where(RawFile.id.in_(chunk.frame_ids))
                .values(chunk_key=chunk.chunk_key)
            )
    queued_ids = {i for chunk in to_queue for i in chunk.frame_ids}
    scrubbed = 0
    if scrub_location:  # before the jobs exist: no worker may fetch an unscrubbed frame
        for frame_id in sorted(queued_ids):  # the others are deleted, never served
            if by_id[frame_id].has_site:
                raw_store.edit_file(by_id[frame_id].storage_path, scrub.scrub_site_location)
                scrubbed += 1
        with session.begin():
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
    result = FinalizeResult(tuple(job_ids), reports, tuple(skipped), False, scrubbed)
    return result, [i for i in by_id if i not in queued_ids]


def _discard_skipped(
    session: Session, session_id: int, frame_ids: Sequence[int], raw_store: RawStore
) -> int:
    """Delete the frames of skipped chunks (after the jobs are queued); returns files removed.

    Rows are marked deleted before the files go (a crash in between leaves work for
    cleanup, never a row pointing at a missing file); a frame that belongs to a job is
    never selected. The folder goes too when nothing is left in it (with an upload
    still arriving, cleanup removes it later).
    """
    doomed: list[str] = []
    if frame_ids:
        with session.begin():
            mine = and_(
                RawFile.upload_session_id == session_id,
                RawFile.id.in_(frame_ids),
                RawFile.stacking_job_id.is_(None),
                RawFile.is_deleted.is_(False),
            )
            doomed = list(session.execute(select(RawFile.storage_path).where(mine)).scalars())
            session.execute(
                update(RawFile)
                .where(mine)
                .values(is_deleted=True)
                .execution_options(synchronize_session=False)
            )
    removed = raw_store.delete_files(doomed)
    with session.begin():
        folder = session.execute(
            select(UploadSession.storage_path).where(UploadSession.id == session_id)
        ).scalar_one()
    raw_store.remove_dir_if_empty(folder, keep_if_receiving=True)
    return removed


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
