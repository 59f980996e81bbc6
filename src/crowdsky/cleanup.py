"""Housekeeping: reap expired leases, expire abandoned uploads, free disk that nobody needs.

Run by ``/api/cleanup.php`` (cron-compatible), by ``crowdsky cleanup`` and periodically
by the server itself. The original deleted the raw files of every finalized session
after one hour, whether or not its job had run (bug 3); here a raw file is deleted only
when no pending, processing or retry job needs it:

- files of an ``uploading`` session idle for ``UPLOAD_EXPIRY_HOURS`` (never finalized,
  so no job exists) — the session becomes ``expired``;
- files of a terminally ``failed`` job, after a retention period for inspection;
- files a finalize gave no job (chunks skipped as too small, already stacked or
  already queued) that the finalize itself did not get to delete (a crash between
  queueing and deleting), ``SKIPPED_FRAME_GRACE_HOURS`` after the finalize;
- files already marked deleted whose unlink was interrupted (a crash after commit).
Completed jobs delete their own files in ``queue.complete_job``, finalize deletes the
frames it skipped. A session folder goes once nothing in it is needed any more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import Session

from crowdsky.db.models import RawFile, StackingJob, UploadSession
from crowdsky.queue import reap_expired_leases
from crowdsky.queue.states import ACTIVE_STATUSES, JobStatus
from crowdsky.storage.raw_store import RawStore

REAP_BATCH = 100
#: How long after a finalize cleanup deletes frames it left without a job. Finalize
#: deletes them itself within seconds; the margin keeps cleanup clear of a finalize
#: still running (its frames get their jobs only at its end).
SKIPPED_FRAME_GRACE_HOURS = 6.0


@dataclass(frozen=True, slots=True)
class CleanupReport:
    """What one cleanup run did."""

    expired_sessions: int
    deleted_files: int
    reaped_jobs: int
    removed_dirs: int

    def summary(self) -> str:
        """The original's one-line text answer, plus our extra counts."""
        return (
            f"Cleanup done: {self.expired_sessions} expired sessions, "
            f"{self.deleted_files} files deleted, {self.reaped_jobs} expired leases "
            f"returned to the queue, {self.removed_dirs} session folders removed."
        )


def run_cleanup(
    session: Session,
    now: datetime,
    *,
    raw_store: RawStore,
    upload_expiry_hours: float,
    failed_raw_retention_hours: float,
    backoff_seconds: float,
) -> CleanupReport:
    """Run every housekeeping step once; each step is its own transaction."""
    reaped = 0
    while True:
        batch = reap_expired_leases(session, now, backoff_seconds=backoff_seconds, limit=REAP_BATCH)
        reaped += len(batch)
        if len(batch) < REAP_BATCH:
            break
    expired, expired_files, expired_dirs = _expire_idle_sessions(
        session, now - timedelta(hours=upload_expiry_hours)
    )
    failed_files = _release_failed_job_files(
        session, now - timedelta(hours=failed_raw_retention_hours)
    )
    skipped_files = _release_skipped_frames(
        session, now - timedelta(hours=SKIPPED_FRAME_GRACE_HOURS)
    )
    deleted = raw_store.delete_files(expired_files + failed_files + skipped_files)
    removed = sum(raw_store.remove_dir(path) >= 0 for path in expired_dirs)
    swept_files, swept_dirs = _sweep_finished_sessions(session, raw_store)
    return CleanupReport(
        expired_sessions=expired,
        deleted_files=deleted + swept_files,
        reaped_jobs=reaped,
        removed_dirs=removed + swept_dirs,
    )


def _expire_idle_sessions(
    session: Session, idle_before: datetime
) -> tuple[int, list[str], list[str]]:
    """Mark idle ``uploading`` sessions expired and their files deleted (commit first)."""
    with session.begin():
        stale = list(
            session.execute(
                select(UploadSession.id, UploadSession.storage_path)
                .where(
                    UploadSession.status == "uploading",
                    UploadSession.last_activity_at < idle_before,
                    # an open session has no jobs; should one ever have some, expiring
                    # it would delete the frames they need
                    ~exists().where(StackingJob.upload_session_id == UploadSession.id),
                )
                .with_for_update(skip_locked=True)
            ).all()
        )
        if not stale:
            return 0, [], []
        ids = [row.id for row in stale]
        files = list(
            session.execute(
                select(RawFile.storage_path).where(
                    RawFile.upload_session_id.in_(ids), RawFile.is_deleted.is_(False)
                )
            ).scalars()
        )
        session.execute(
            update(RawFile)
            .where(RawFile.upload_session_id.in_(ids))
            .values(is_deleted=True)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(UploadSession)
            .where(UploadSession.id.in_(ids), UploadSession.status == "uploading")
            .values(status="expired")
            .execution_options(synchronize_session=False)
        )
    return len(ids), files, [row.storage_path for row in stale]


def _release_failed_job_files(session: Session, failed_before: datetime) -> list[str]:
    """Mark deleted the raws of jobs that failed for good before the retention limit."""
    with session.begin():
        failed_jobs = select(StackingJob.id).where(
            StackingJob.status == JobStatus.FAILED, StackingJob.completed_at < failed_before
        )
        files = list(
            session.execute(
                select(RawFile.storage_path).where(
                    RawFile.stacking_job_id.in_(failed_jobs), RawFile.is_deleted.is_(False)
                )
            ).scalars()
        )
        if files:
            session.execute(
                update(RawFile)
                .where(RawFile.stacking_job_id.in_(failed_jobs), RawFile.is_deleted.is_(False))
                .values(is_deleted=True)
                .execution_options(synchronize_session=False)
            )
    return files


def _release_skipped_frames(session: Session, finalized_before: datetime) -> list[str]:
    """Mark deleted the jobless frames of sessions finalized before the grace limit.

    Only a session's finalize attaches frames to jobs, so once it is over a frame
    without a job is one it skipped, which nothing will ever need.
    """
    with session.begin():
        finalized = select(UploadSession.id).where(
            UploadSession.status == "complete", UploadSession.completed_at < finalized_before
        )
        jobless = and_(
            RawFile.upload_session_id.in_(finalized),
            RawFile.stacking_job_id.is_(None),
            RawFile.is_deleted.is_(False),
        )
        files = list(session.execute(select(RawFile.storage_path).where(jobless)).scalars())
        if files:
            session.execute(
                update(RawFile)
                .where(jobless)
                .values(is_deleted=True)
                .execution_options(synchronize_session=False)
            )
    return files


def _sweep_finished_sessions(session: Session, raw_store: RawStore) -> tuple[int, int]:
    """Finish what an interrupted deletion left: files marked deleted, empty folders.

    Only sessions whose folder still exists and that have no active job are visited, so
    the work is bounded by the folders actually left on disk.
    """
    with session.begin():
        active_job = exists().where(
            StackingJob.upload_session_id == UploadSession.id,
            StackingJob.status.in_([str(s) for s in ACTIVE_STATUSES]),
        )
        candidates = list(
            session.execute(
                select(UploadSession.id, UploadSession.storage_path).where(
                    UploadSession.status.in_(["complete", "expired"]), ~active_job
                )
            ).all()
        )
    files = dirs = 0
    for row in candidates:
        if not raw_store.dir_exists(row.storage_path):
            continue
        with session.begin():
            leftovers = list(
                session.execute(
                    select(RawFile.storage_path).where(
                        RawFile.upload_session_id == row.id, RawFile.is_deleted.is_(True)
                    )
                ).scalars()
            )
        files += raw_store.delete_files(leftovers)
        dirs += raw_store.remove_dir_if_empty(row.storage_path)
    return files, dirs
