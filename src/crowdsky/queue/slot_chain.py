"""A slot's chain of jobs: extending a queued job, and replacing the earlier stacks.

A user ends with one stack per slot (UTC slot, telescope, pointing; see
:mod:`crowdsky.ingest.slots`). Frames of a slot uploaded later either join the
slot's queued job (:func:`extend_job`) or go to a follow-up job that re-stacks the
union and names the earlier job in ``replaces_job_id``. When a job completes, the
rows of the stacks it replaces are deleted in the same transaction as its own row
is inserted (:func:`remove_replaced_stacks`), so the stack list never shows two
stacks of one slot, nor none in between.

Both functions run inside the caller's transaction and change no job's status.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from crowdsky.db.engine import affected_rows
from crowdsky.db.models import RawFile, StackedFrame, StackingJob
from crowdsky.queue import errors
from crowdsky.queue.states import JobStatus

#: Statuses in which a job has not started: more frames may still join it.
EXTENDABLE_STATUSES = (JobStatus.PENDING.value, JobStatus.RETRY.value)
#: A chain longer than this is a cycle (a bug); walking it stops there.
MAX_CHAIN_LENGTH = 1000


def extend_job(session: Session, job_id: int, raw_file_ids: Sequence[int]) -> int:
    """Attach more frames to a job that has not started; returns its new frame count.

    The caller holds the job's row lock (``SELECT ... FOR UPDATE``), so no worker can
    claim it in between; the update is still compare-and-set on the status.

    Raises
    ------
    WrongState
        When the job is no longer ``pending`` or ``retry``.
    ValueError
        When a frame is missing, deleted or already in a job (the caller's
        transaction must then roll back).
    """
    grown = affected_rows(
        session.execute(
            update(StackingJob)
            .where(StackingJob.id == job_id, StackingJob.status.in_(EXTENDABLE_STATUSES))
            .values(frame_count=StackingJob.frame_count + len(raw_file_ids))
            .execution_options(synchronize_session=False)
        )
    )
    if grown != 1:
        raise errors.WrongState(f"job {job_id} has started; it cannot take more frames")
    attached = affected_rows(
        session.execute(
            update(RawFile)
            .where(
                RawFile.id.in_(list(raw_file_ids)),
                RawFile.is_deleted.is_(False),
                RawFile.stacking_job_id.is_(None),
            )
            .values(stacking_job_id=job_id)
            .execution_options(synchronize_session=False)
        )
    )
    if attached != len(raw_file_ids):
        raise ValueError(
            f"job {job_id}: {len(raw_file_ids) - attached} raw files are missing, "
            "deleted or already in a job"
        )
    count = select(StackingJob.frame_count).where(StackingJob.id == job_id)
    return int(session.execute(count).scalar_one())


def remove_replaced_stacks(session: Session, job: StackingJob) -> tuple[str, ...]:
    """Delete the stack rows of every earlier job of the slot ``job`` replaces.

    Walks ``replaces_job_id`` back to the slot's first job. Returns the replaced
    stacks' result paths (FITS and thumbnail), for the caller to delete after the
    commit.
    """
    earlier: list[int] = []
    current = job.replaces_job_id
    while current is not None and current not in earlier and len(earlier) < MAX_CHAIN_LENGTH:
        earlier.append(current)
        current = session.execute(
            select(StackingJob.replaces_job_id).where(StackingJob.id == current)
        ).scalar_one_or_none()
    if not earlier:
        return ()
    stacks = session.execute(
        select(StackedFrame.id, StackedFrame.ucloud_path, StackedFrame.thumbnail_path).where(
            StackedFrame.stacking_job_id.in_(earlier), StackedFrame.user_id == job.user_id
        )
    ).all()
    if not stacks:
        return ()
    session.execute(
        delete(StackedFrame)
        .where(StackedFrame.id.in_([s.id for s in stacks]))
        .execution_options(synchronize_session=False)
    )
    return tuple(p for s in stacks for p in (s.ucloud_path, s.thumbnail_path) if p)
