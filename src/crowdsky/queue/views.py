"""Read-only views of a user's jobs and stacks, for status pages, clients and the demo.

Kept beside the transitions because they read the same rows; they never write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crowdsky.db.models import JobAttempt, StackedFrame, StackingJob, UploadSession
from crowdsky.queue import errors
from crowdsky.queue.states import JobStatus

DEFAULT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class StackView:
    """One completed stack (a ``stacked_frames`` row)."""

    id: int
    job_id: int
    chunk_key: str
    object_name: str | None
    telescope: str | None
    filter_name: str | None
    ucloud_path: str
    thumbnail_path: str | None
    n_frames_input: int
    n_frames_aligned: int
    n_stars_detected: int | None
    total_exptime: float | None
    date_obs_start: datetime | None
    date_obs_end: datetime | None
    ra_deg: float | None
    dec_deg: float | None
    file_size_bytes: int
    created_at: datetime
    rejected_frames: tuple[tuple[str, str], ...] = ()
    """``(filename, reason)`` of each frame left out, as the worker reported them."""


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as its owner sees it: status, progress, errors and, once done, the stack."""

    job_id: int
    user_id: int
    upload_session_id: int
    chunk_key: str
    object_name: str | None
    frame_count: int
    status: JobStatus
    worker_id: str | None
    attempts: int
    retry_count: int
    progress: float | None
    progress_message: str | None
    error_message: str | None
    errors: tuple[str, ...]
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    stack: StackView | None


def list_user_jobs(
    session: Session,
    *,
    user_id: int,
    session_token: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[JobView]:
    """A user's jobs, oldest first; only those of one upload session when a token is given.

    A token of another user's session yields an empty list, like an unknown token.
    """
    with session.begin():
        query = select(StackingJob).where(StackingJob.user_id == user_id)
        if session_token is not None:
            query = query.join(
                UploadSession, UploadSession.id == StackingJob.upload_session_id
            ).where(UploadSession.session_token == session_token)
        jobs = list(
            session.execute(
                query.order_by(StackingJob.created_at.desc(), StackingJob.id.desc()).limit(limit)
            ).scalars()
        )
        jobs.reverse()
        ids = [job.id for job in jobs]
        stacks = {
            frame.stacking_job_id: _stack_view(frame)
            for frame in session.execute(
                select(StackedFrame).where(StackedFrame.stacking_job_id.in_(ids))
            ).scalars()
        }
        history: dict[int, list[str]] = {}
        for job_id, message in session.execute(
            select(JobAttempt.stacking_job_id, JobAttempt.error_message)
            .where(JobAttempt.stacking_job_id.in_(ids), JobAttempt.error_message.is_not(None))
            .order_by(JobAttempt.stacking_job_id, JobAttempt.attempt)
        ):
            if message:
                history.setdefault(job_id, []).append(message)
        return [_job_view(job, tuple(history.get(job.id, ())), stacks.get(job.id)) for job in jobs]


def get_job(session: Session, job_id: int) -> JobView:
    """One job with its error history and, once completed, its stack.

    Raises
    ------
    JobNotFound
    """
    with session.begin():
        job = session.get(StackingJob, job_id)
        if job is None:
            raise errors.JobNotFound(f"job {job_id} does not exist")
        history = tuple(
            message
            for message in session.execute(
                select(JobAttempt.error_message)
                .where(JobAttempt.stacking_job_id == job_id, JobAttempt.error_message.is_not(None))
                .order_by(JobAttempt.attempt)
            ).scalars()
            if message
        )
        frame = session.execute(
            select(StackedFrame).where(StackedFrame.stacking_job_id == job_id)
        ).scalar_one_or_none()
        return _job_view(job, history, _stack_view(frame) if frame else None)


def list_user_stacks(
    session: Session,
    *,
    user_id: int,
    object_name: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[StackView]:
    """A user's stacks, newest observation first, optionally of one object."""
    with session.begin():
        query = select(StackedFrame).where(StackedFrame.user_id == user_id)
        if object_name is not None:
            query = query.where(StackedFrame.object_name == object_name)
        rows = session.execute(
            query.order_by(StackedFrame.date_obs_start.desc(), StackedFrame.id.desc()).limit(limit)
        ).scalars()
        return [_stack_view(row) for row in rows]


def _job_view(
    job: StackingJob, errors_history: tuple[str, ...], stack: StackView | None
) -> JobView:
    return JobView(
        job_id=job.id,
        user_id=job.user_id,
        upload_session_id=job.upload_session_id,
        chunk_key=job.chunk_key,
        object_name=job.object_name,
        frame_count=job.frame_count,
        status=JobStatus(job.status),
        worker_id=job.worker_id,
        attempts=job.attempts,
        retry_count=job.retry_count,
        progress=job.progress,
        progress_message=job.progress_message,
        error_message=job.error_message,
        errors=errors_history,
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
        stack=stack,
    )


def _stack_view(frame: StackedFrame) -> StackView:
    return StackView(
        id=frame.id,
        job_id=frame.stacking_job_id,
        chunk_key=frame.chunk_key,
        object_name=frame.object_name,
        telescope=frame.telescope,
        filter_name=frame.filter_name,
        ucloud_path=frame.ucloud_path,
        thumbnail_path=frame.thumbnail_path,
        n_frames_input=frame.n_frames_input,
        n_frames_aligned=frame.n_frames_aligned,
        n_stars_detected=frame.n_stars_detected,
        total_exptime=frame.total_exptime,
        date_obs_start=frame.date_obs_start,
        date_obs_end=frame.date_obs_end,
        # the plate solution's centre when solved (as in the stack catalogue)
        ra_deg=frame.wcs_ra_deg if frame.wcs_ra_deg is not None else frame.ra_deg,
        dec_deg=frame.wcs_dec_deg if frame.wcs_dec_deg is not None else frame.dec_deg,
        file_size_bytes=frame.file_size_bytes,
        created_at=frame.created_at,
        rejected_frames=_rejected_frames(frame.rejected_frames),
    )


def _rejected_frames(stored: str | None) -> tuple[tuple[str, str], ...]:
    """The stored JSON list of ``[filename, reason]`` pairs (tolerant of damage)."""
    try:
        pairs = json.loads(stored) if stored else []
    except ValueError:
        return ()
    return tuple(
        (str(pair[0]), str(pair[1])) for pair in pairs if isinstance(pair, list) and len(pair) == 2
    )
