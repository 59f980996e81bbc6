"""Finalize: turn an upload session's frames into stacking jobs, once, atomically.

Finalize groups the session's frames (:mod:`crowdsky.ingest.chunking`), skips chunks
too small and frames already stacked or queued (by SHA-256, with the reason),
optionally scrubs the site from the stored files, and gives each chunk to its slot
(:mod:`crowdsky.ingest.slots`): the frames join the slot's waiting job, or a
follow-up job that re-stacks the slot (see :func:`_place`).

It is one transaction holding the session's and the user's locks: the jobs, the
frames' chunk keys, the release of skipped frames and ``uploading`` → ``complete``
commit together, so a crash leaves an open session or a finalized one with all its
jobs. A repeated or concurrent finalize answers the same jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from crowdsky import retention
from crowdsky.db.models import RawFile, StackingJob
from crowdsky.ingest import chunking, scrub, slots
from crowdsky.ingest import session_transitions as moves
from crowdsky.ingest.errors import EmptySession
from crowdsky.ingest.session_states import SessionStatus
from crowdsky.ingest.sessions import IntakeSettings
from crowdsky.queue import JobStatus, NewJob, add_jobs, extend_job
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
    skipped: list[SkippedReport] = []
    if missing:
        skipped.append(
            SkippedReport(
                "",
                len(missing),
                "the server lost these stored files (missing on disk); upload them again",
                tuple(f.filename for f in missing),
            )
        )
    slots.lock_user(session, user_id)  # one finalize of this user places frames at a time
    copies = (
        {}
        if overwrite
        else slots.stacked_copies(session, user_id, session_id, (f.sha256 for f in frames))
    )
    skipped += _copy_reports([f for f in frames if f.sha256 in copies], copies, intake)
    fresh = [f for f in frames if f.sha256 not in copies]
    plan = _plan(fresh, intake)
    placements: list[_Placement] = []
    for chunk in plan.chunks:
        head = slots.find_slot_head(session, user_id, chunk, intake.separation_deg)
        placements.append(_Placement(chunk, head))
    for small in plan.skipped:  # too small alone, but it may join its slot's stack
        head = slots.find_slot_head(session, user_id, small.chunk, intake.separation_deg)
        if head is None or overwrite or not _restacks(head):
            skipped.append(_skipped_report(small.chunk, small.reason, by_id))
        else:
            placements.append(_Placement(small.chunk, head))
    for chunk in [*plan.chunks, *(s.chunk for s in plan.skipped)]:
        session.execute(
            update(RawFile).where(RawFile.id.in_(chunk.frame_ids)).values(chunk_key=chunk.chunk_key)
        )
    queued_ids = {i for p in placements for i in p.chunk.frame_ids}
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
    reports = tuple(
        _place(session, now, user_id, session_id, p, by_id, overwrite) for p in placements
    )
    jobless = [f.info.frame_id for f in frames if f.info.frame_id not in queued_ids]
    freed = retention.release_skipped_frames(session, session_id, jobless)
    job_ids = tuple(dict.fromkeys(r.job_id for r in reports))
    result = FinalizeResult(job_ids, reports, tuple(skipped), False, scrubbed)
    return result, freed


@dataclass(frozen=True, slots=True)
class _Placement:
    """A chunk of new frames and the slot's latest job (None: a new slot)."""

    chunk: chunking.Chunk
    head: slots.SlotHead | None


def _place(
    session: Session,
    now: datetime,
    user_id: int,
    session_id: int,
    placement: _Placement,
    by_id: dict[int, _Frame],
    overwrite: bool,
) -> ChunkReport:
    """Give a chunk's frames to its slot: join the slot's queued job, or queue a job.

    - no job yet: a new job;
    - the job has not started (``pending``, ``retry``): the frames join it;
    - it is being processed: a follow-up job that waits for it and, once it is done,
      takes its frames (:func:`crowdsky.retention.hand_over_frames`) and re-stacks
      the union; the running worker is not disturbed;
    - it completed or failed with every frame still in the raw buffer: a follow-up
      job that takes those frames now and re-stacks the union;
    - it completed or failed but its frames are gone (the re-stack window closed): a
      job of the new frames alone, beside the earlier stack (no frame is lost).

    A follow-up keeps the slot's chunk key, and its stack replaces the earlier one on
    completion (``queue.complete_job``). With ``overwrite`` the frames never join an
    earlier job and take none of its frames: the new job's stack replaces the slot's.
    """
    chunk, head = placement.chunk, placement.head
    if head is not None and not overwrite and head.status in _NOT_STARTED:
        total = extend_job(session, head.job_id, chunk.frame_ids)
        _set_key(session, chunk.frame_ids, head.chunk_key)
        return _report(head.job_id, head.chunk_key, total, chunk, by_id)
    # the job whose stack the new one replaces (None: a stack of the new frames alone)
    earlier = head if head is not None and (overwrite or _restacks(head)) else None
    key = earlier.chunk_key if earlier is not None else chunk.chunk_key
    waits = earlier is not None and earlier.status in ACTIVE_STATUSES
    new = NewJob(
        user_id=user_id,
        upload_session_id=session_id,
        chunk_key=key,
        raw_file_ids=chunk.frame_ids,
        object_name=_object_name(chunk, by_id),
        telescope=chunk.telescope,
        filter_name=chunk.filter_name,
        exptime=chunk.exptime_s,
        slot=slots.slot_of(chunk),
        ra_deg=earlier.ra_deg if earlier is not None else chunk.ra_deg,
        dec_deg=earlier.dec_deg if earlier is not None else chunk.dec_deg,
        replaces_job_id=earlier.job_id if earlier is not None else None,
        waits_for_job_id=earlier.job_id if earlier is not None and waits else None,
    )
    (job_id,) = add_jobs(session, now, [new])
    total = chunk.frame_count
    if earlier is not None and not waits and not overwrite:
        total += retention.move_frames(session, earlier.job_id, job_id)
    if head is not None and earlier is None:
        log.warning(
            "finalize.slot_frames_gone: job %d of slot %s stacks only the new frames; the "
            "frames of job %d left the raw buffer",
            job_id,
            key,
            head.job_id,
        )
    _set_key(session, chunk.frame_ids, key)
    return _report(job_id, key, total, chunk, by_id)


_NOT_STARTED = frozenset({JobStatus.PENDING, JobStatus.RETRY})


def _restacks(head: slots.SlotHead) -> bool:
    """Whether new frames of the slot are stacked together with the head's frames."""
    return head.status in ACTIVE_STATUSES or head.frames_stored


def _set_key(session: Session, frame_ids: Sequence[int], key: str) -> None:
    session.execute(update(RawFile).where(RawFile.id.in_(list(frame_ids))).values(chunk_key=key))


def _report(
    job_id: int, key: str, total: int, chunk: chunking.Chunk, by_id: dict[int, _Frame]
) -> ChunkReport:
    return ChunkReport(
        key,
        job_id,
        total,
        _object_name(chunk, by_id),
        chunk.telescope,
        chunk.filter_name,
        chunk.exptime_s,
    )


def _copy_reports(
    copies: Sequence[_Frame], held_by: dict[str, slots.CopyHolder], intake: IntakeSettings
) -> list[SkippedReport]:
    """One report per planned chunk of frames the user has stacked or queued already."""
    by_id = {f.info.frame_id: f for f in copies}
    reports = []
    for chunk in chunking.group_frames(
        (f.info for f in copies),
        key_format=intake.key_format,
        separation_deg=intake.separation_deg,
    ):
        holder = min((held_by[by_id[i].sha256] for i in chunk.frame_ids), key=_holder_order)
        reports.append(_skipped_report(chunk, _copy_reason(holder), by_id))
    return reports


def _holder_order(holder: slots.CopyHolder) -> tuple[bool, int]:
    return holder.stack_id is None, holder.job_id  # a stack first, then the oldest job


def _copy_reason(holder: slots.CopyHolder) -> str:
    """Why copies get no job (the same files, by SHA-256, are never stacked twice)."""
    again = "upload the files again and finalize with overwrite=1"
    if holder.stack_id is not None:
        return (
            f"already stacked (stack {holder.stack_id}) from these same files (same "
            f"SHA-256); to stack them again, {again}"
        )
    if holder.status == JobStatus.COMPLETED:  # its stack was replaced by a later one
        return (
            f"already stacked by job {holder.job_id} from these same files (same SHA-256); "
            f"to stack them again, {again}"
        )
    return (
        f"already queued as job {holder.job_id} with these same files (same SHA-256); "
        f"to queue them again, {again}"
    )


def _repeat_finalize(
    session: Session, user_id: int, session_id: int, intake: IntakeSettings
) -> FinalizeResult:
    """The answer of a finalize that already happened: its jobs, and what stayed out.

    Runs in the caller's transaction, after the session's row lock: the jobs read are
    those the first finalize committed.
    """
    holding = select(RawFile.stacking_job_id).where(RawFile.upload_session_id == session_id)
    jobs = list(
        session.execute(
            select(StackingJob)
            .where(or_(StackingJob.upload_session_id == session_id, StackingJob.id.in_(holding)))
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
