"""Raw-file retention: the one place that decides a raw frame may be deleted.

A user's raw frames exist nowhere else. A file is released when its job completed
(unless the slot may still re-stack it: :func:`hand_over_frames`,
:func:`release_restack_buffer`), when finalize gave it no job, when its session
expired, or when its job failed for good and the inspection period passed. Each
``release_*`` function marks rows deleted inside the caller's transaction and returns
the paths; :func:`delete_freed` removes the files only after that commit, so a
rollback never leaves a row without its file. It imports no storage code (files go
through a :class:`FileRemover`), so the queue can use it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from crowdsky.db.models import RawFile, StackingJob, UploadSession
from crowdsky.queue.states import ACTIVE_STATUSES, JobStatus

log = logging.getLogger(__name__)


class FileRemover(Protocol):
    """What deleting needs of the raw store."""

    def delete_files(self, relative_paths: Sequence[str]) -> int: ...

    def remove_dir_if_empty(
        self, relative_dir: str, *, keep_if_receiving: bool = False
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class FreedFiles:
    """Raw files a committed transaction made unneeded, and folders that may go with them."""

    paths: tuple[str, ...] = ()
    session_dirs: tuple[str, ...] = ()
    keep_receiving_dirs: bool = False
    """Keep a folder with a partial upload in it (a request may still be streaming)."""

    def __add__(self, other: FreedFiles) -> FreedFiles:
        return FreedFiles(
            self.paths + other.paths,
            self.session_dirs + other.session_dirs,
            self.keep_receiving_dirs or other.keep_receiving_dirs,
        )


@dataclass(frozen=True, slots=True)
class Deletion:
    """What :func:`delete_freed` removed."""

    files: int
    dirs: int


def release_job_files(
    session: Session, job_id: int, upload_session_id: int, *, keep: bool = False
) -> FreedFiles:
    """A completed job's raws (its stack row is in this transaction).

    Handed to the slot's follow-up job when one waits for this job; else kept when
    ``keep`` (the re-stack window is open: :func:`release_restack_buffer` frees them
    later); else marked deleted and returned.
    """
    if hand_over_frames(session, job_id) is not None or keep:
        return FreedFiles()
    mine = and_(RawFile.stacking_job_id == job_id, RawFile.is_deleted.is_(False))
    sessions = _sessions_of(session, mine)
    paths = _mark_deleted(session, mine)
    owners = dict.fromkeys([upload_session_id, *sessions])
    folders = [finished_session_dir(session, s) for s in owners]
    return FreedFiles(paths, tuple(f for f in folders if f))


def hand_over_frames(session: Session, job_id: int) -> int | None:
    """Give a finished job's stored frames to the slot's follow-up job waiting for it.

    The follow-up (``waits_for_job_id`` = ``job_id``) becomes claimable and re-stacks
    the union. Returns its id, or None when no job waits.
    """
    follow_up = session.execute(
        select(StackingJob.id)
        .where(StackingJob.waits_for_job_id == job_id)
        .order_by(StackingJob.id)
        .limit(1)
        .with_for_update()
    ).scalar_one_or_none()
    if follow_up is None:
        return None
    move_frames(session, job_id, follow_up)
    session.execute(
        update(StackingJob)
        .where(StackingJob.waits_for_job_id == job_id)
        .values(waits_for_job_id=None)
        .execution_options(synchronize_session=False)
    )
    return int(follow_up)


def move_frames(session: Session, from_job_id: int, to_job_id: int) -> int:
    """Attach a finished job's stored frames to the job that re-stacks its slot.

    Frames that are deleted or lost stay behind; frames whose SHA-256 the target job
    already holds (the same file uploaded again) stay behind too, so no frame is
    stacked twice. The target's ``frame_count`` grows by the frames moved; returns
    their number.
    """
    held = select(RawFile.sha256).where(RawFile.stacking_job_id == to_job_id)
    movable = and_(
        RawFile.stacking_job_id == from_job_id,
        RawFile.is_deleted.is_(False),
        RawFile.lost_at.is_(None),
        RawFile.sha256.not_in(list(session.execute(held).scalars())),
    )
    ids = list(session.execute(select(RawFile.id).where(movable)).scalars())
    if not ids:
        return 0
    session.execute(
        update(RawFile)
        .where(RawFile.id.in_(ids))
        .values(stacking_job_id=to_job_id)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(StackingJob)
        .where(StackingJob.id == to_job_id)
        .values(frame_count=StackingJob.frame_count + len(ids))
        .execution_options(synchronize_session=False)
    )
    return len(ids)


def release_restack_buffer(session: Session, completed_before: datetime) -> FreedFiles:
    """Raws of jobs completed before ``completed_before``: the re-stack window closed.

    A later upload of the slot then stacks only its own frames
    (:mod:`crowdsky.ingest.slots`).
    """
    done = select(StackingJob.id).where(
        StackingJob.status == JobStatus.COMPLETED, StackingJob.completed_at < completed_before
    )
    kept = and_(RawFile.stacking_job_id.in_(done), RawFile.is_deleted.is_(False))
    sessions = _sessions_of(session, kept)
    paths = _mark_deleted(session, kept)
    folders = [finished_session_dir(session, s) for s in sessions]
    return FreedFiles(paths, tuple(f for f in folders if f))


def release_skipped_frames(
    session: Session, upload_session_id: int, frame_ids: Sequence[int]
) -> FreedFiles:
    """Frames a finalize gave no job, in the finalize's transaction: mark them deleted.

    A frame attached to a job is never selected. The folder is offered for removal
    when no job of the session needs it (it is kept while an upload streams into it).
    """
    if not frame_ids:
        paths: tuple[str, ...] = ()
    else:
        paths = _mark_deleted(
            session,
            and_(
                RawFile.upload_session_id == upload_session_id,
                RawFile.id.in_(list(frame_ids)),
                RawFile.stacking_job_id.is_(None),
                RawFile.is_deleted.is_(False),
            ),
        )
    folder = session.execute(
        select(UploadSession.storage_path).where(UploadSession.id == upload_session_id)
    ).scalar_one()
    dirs = () if _has_active_job(session, upload_session_id) else (folder,)
    return FreedFiles(paths, dirs, keep_receiving_dirs=True)


def release_expired_sessions(session: Session, session_ids: Sequence[int]) -> FreedFiles:
    """Files of sessions that expired in this transaction (never finalized: no job)."""
    if not session_ids:
        return FreedFiles()
    ids = list(session_ids)
    paths = _mark_deleted(
        session,
        and_(
            RawFile.upload_session_id.in_(ids),
            RawFile.is_deleted.is_(False),
            RawFile.stacking_job_id.is_(None),
        ),
    )
    dirs = tuple(
        session.execute(
            select(UploadSession.storage_path).where(UploadSession.id.in_(ids))
        ).scalars()
    )
    return FreedFiles(paths, dirs)


def release_failed_job_files(session: Session, failed_before: datetime) -> FreedFiles:
    """Raws of jobs that failed for good before ``failed_before`` (after inspection)."""
    failed_jobs = select(StackingJob.id).where(
        StackingJob.status == JobStatus.FAILED, StackingJob.completed_at < failed_before
    )
    paths = _mark_deleted(
        session,
        and_(RawFile.stacking_job_id.in_(failed_jobs), RawFile.is_deleted.is_(False)),
    )
    return FreedFiles(paths)


def mark_lost(session: Session, now: datetime, raw_file_ids: Sequence[int]) -> int:
    """Record that these raws' files are missing on disk; returns how many were marked.

    Compare-and-set on ``is_deleted = false``: a file deleted by a concurrent
    completion (its row marked first, then unlinked) is not reported lost.
    """
    if not raw_file_ids:
        return 0
    rows = session.execute(
        select(RawFile.id, RawFile.upload_session_id, RawFile.storage_path).where(
            RawFile.id.in_(list(raw_file_ids)),
            RawFile.is_deleted.is_(False),
            RawFile.lost_at.is_(None),
        )
    ).all()
    if not rows:
        return 0
    session.execute(
        update(RawFile)
        .where(
            RawFile.id.in_([r.id for r in rows]),
            RawFile.is_deleted.is_(False),
            RawFile.lost_at.is_(None),
        )
        .values(lost_at=now)
        .execution_options(synchronize_session=False)
    )
    for row in rows:
        log.warning(
            "retention.raw_file_lost: raw file %d of upload session %d is missing on disk (%s)",
            row.id,
            row.upload_session_id,
            row.storage_path,
        )
    return len(rows)


def finished_session_dir(session: Session, upload_session_id: int) -> str | None:
    """The session's folder if the session is finalized and none of its jobs is active."""
    upload = session.get(UploadSession, upload_session_id)
    # the literal of SessionStatus.COMPLETE: ingest imports this module, not the reverse
    if upload is None or upload.status != "complete":
        return None
    return None if _has_active_job(session, upload_session_id) else upload.storage_path


def delete_freed(session: Session, store: FileRemover, freed: FreedFiles) -> Deletion:
    """Delete freed files and empty folders; only after the transaction that freed them.

    Raises
    ------
    RuntimeError
        When ``session`` is still inside a transaction (the release is not committed).
    """
    if session.in_transaction():
        raise RuntimeError("raw files may be deleted only after the releasing commit")
    files = store.delete_files(freed.paths)
    dirs = sum(
        store.remove_dir_if_empty(d, keep_if_receiving=freed.keep_receiving_dirs)
        for d in dict.fromkeys(freed.session_dirs)
    )
    return Deletion(files, dirs)


def _sessions_of(session: Session, where: object) -> list[int]:
    """The upload sessions of the raws ``where`` selects (a job may hold frames of
    several sessions: frames of its slot uploaded later join it)."""
    query = select(RawFile.upload_session_id).where(where).distinct()  # type: ignore[arg-type]
    return sorted(session.execute(query).scalars())


def _mark_deleted(session: Session, where: object) -> tuple[str, ...]:
    paths = tuple(session.execute(select(RawFile.storage_path).where(where)).scalars())  # type: ignore[arg-type]
    if paths:
        session.execute(
            update(RawFile)
            .where(where)  # type: ignore[arg-type]
            .values(is_deleted=True)
            .execution_options(synchronize_session=False)
        )
    return paths


def _has_active_job(session: Session, upload_session_id: int) -> bool:
    active = session.execute(
        select(func.count())
        .select_from(StackingJob)
        .where(
            StackingJob.upload_session_id == upload_session_id,
            StackingJob.status.in_([str(s) for s in ACTIVE_STATUSES]),
        )
    ).scalar_one()
    return bool(active)
