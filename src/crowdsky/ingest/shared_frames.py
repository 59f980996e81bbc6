"""Frames of one slot shared across upload sessions: what a deletion may take.

A job of a slot holds frames of several sessions (later uploads join it, or a
follow-up takes the frames of the slot's finished job). Deleting a session or a job
must never take frames out from under another job. This module answers, inside the
deletion's transaction (after ``slots.lock_user``, so no finalize moves frames
meanwhile), which jobs hold frames across the boundary, and detaches a deleted
session's frames from the queued jobs of other sessions, keeping their counts right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from crowdsky.db.models import RawFile, StackingJob
from crowdsky.queue.states import JobStatus

#: A job in these states has not been stacked yet: its frames may still be detached.
QUEUED = (str(JobStatus.PENDING), str(JobStatus.RETRY))


@dataclass(frozen=True)
class Holding:
    """``frames`` frames of upload session ``owner`` held by job ``job_id``."""

    job_id: int
    status: str
    owner: int
    frames: int


def held_by_other_jobs(session: Session, upload_session_id: int) -> list[Holding]:
    """This session's frames held by jobs of other sessions (their rows locked)."""
    return _holdings(
        session,
        (RawFile.upload_session_id == upload_session_id)
        & (StackingJob.upload_session_id != upload_session_id),
    )


def foreign_frames_of(session: Session, job_ids: Sequence[int]) -> list[Holding]:
    """Frames of other sessions than their own that the jobs ``job_ids`` hold."""
    if not job_ids:
        return []
    return _holdings(
        session,
        StackingJob.id.in_(list(job_ids))
        & (RawFile.upload_session_id != StackingJob.upload_session_id),
    )


def detach_from_queued(session: Session, holdings: Sequence[Holding]) -> None:
    """Lower each queued job's ``frame_count`` by the held frames its session loses.

    The caller deletes the raw rows; a finished job keeps its count (its stack was
    made of those frames). A queued job left with no frame at all is deleted.
    """
    for held in holdings:
        if held.status not in QUEUED:
            continue
        session.execute(
            update(StackingJob)
            .where(StackingJob.id == held.job_id)
            .values(frame_count=StackingJob.frame_count - held.frames)
            .execution_options(synchronize_session=False)
        )
        left = session.execute(
            select(func.count()).where(
                RawFile.stacking_job_id == held.job_id,
                RawFile.upload_session_id != held.owner,
            )
        ).scalar_one()
        if not left:
            session.execute(delete(StackingJob).where(StackingJob.id == held.job_id))


def detach_session(session: Session, upload_session_id: int, job_ids: Sequence[int]) -> str:
    """Prepare deleting an upload session and its jobs ``job_ids``; returns why not, or "".

    Refused while another session's job is stacking this session's frames, and while
    a job of this session holds frames of another (that session's slot has its one
    stack, or will have it, in this job). Otherwise this session's frames are detached
    from other sessions' queued jobs (:func:`detach_from_queued`).
    """
    elsewhere = held_by_other_jobs(session, upload_session_id)
    for held in elsewhere:
        if held.status == str(JobStatus.PROCESSING):
            return (
                f"job {held.job_id} of another upload session is stacking frames of this "
                "session; try again when it ends"
            )
    for held in foreign_frames_of(session, job_ids):
        return (
            f"job {held.job_id} of this session also holds frames of upload session "
            f"{held.owner} (their slot's one stack); delete that session first"
        )
    detach_from_queued(session, elsewhere)
    return ""


def _holdings(session: Session, where: object) -> list[Holding]:
    held = select(StackingJob.id).join(RawFile, RawFile.stacking_job_id == StackingJob.id)
    ids = sorted(set(session.execute(held.where(where)).scalars()))  # type: ignore[arg-type]
    if not ids:
        return []
    # lock the holders first: no claim or hand-over changes them until the commit
    session.execute(select(StackingJob.id).where(StackingJob.id.in_(ids)).with_for_update())
    rows = session.execute(
        select(StackingJob.id, StackingJob.status, RawFile.upload_session_id, func.count())
        .join(StackingJob, RawFile.stacking_job_id == StackingJob.id)
        .where(where)  # type: ignore[arg-type]
        .group_by(StackingJob.id, StackingJob.status, RawFile.upload_session_id)
        .order_by(StackingJob.id, RawFile.upload_session_id)
    ).all()
    return [Holding(int(j), str(s), int(o), int(n)) for j, s, o, n in rows]
