"""Housekeeping: reap expired leases, expire abandoned uploads, reconcile the raw buffer.

Run by ``/api/cleanup.php`` (cron-compatible), by ``crowdsky cleanup`` and periodically
by the server. It runs the steps; :mod:`crowdsky.retention` alone decides which raw
file is no longer needed, and files are deleted only after the transaction that
released them committed. :func:`reconcile` makes the disk agree with the rows: it
removes files without a committed row (after ``ORPHAN_GRACE_SECONDS``) and stale
partial uploads, and marks rows whose file is missing as lost.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from crowdsky import retention
from crowdsky.db.models import RawFile, UploadSession
from crowdsky.ingest import expire_idle_sessions
from crowdsky.ingest.session_states import SessionStatus
from crowdsky.queue import reap_expired_leases
from crowdsky.storage.raw_store import PARTIAL_PREFIX, RawStore

log = logging.getLogger(__name__)

REAP_BATCH = 100
#: A file on disk without a row is removed once its data is this old. A file is linked
#: under its final name a moment before its row commits; the margin keeps cleanup
#: clear of that moment, however slowly the upload itself streamed.
ORPHAN_GRACE_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class CleanupReport:
    """What one cleanup run did."""

    expired_sessions: int
    deleted_files: int
    reaped_jobs: int
    removed_dirs: int
    orphans_removed: int = 0
    lost_files: int = 0

    def summary(self) -> str:
        """The original's one-line text answer, plus our extra counts."""
        return (
            f"Cleanup done: {self.expired_sessions} expired sessions, "
            f"{self.deleted_files} files deleted, {self.reaped_jobs} expired leases "
            f"returned to the queue, {self.removed_dirs} session folders removed, "
            f"{self.orphans_removed} orphaned files removed, "
            f"{self.lost_files} missing files reported."
        )


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What :func:`reconcile` did to the raw buffer."""

    deleted_files: int = 0
    orphans_removed: int = 0
    partials_removed: int = 0
    lost_files: int = 0
    removed_dirs: int = 0


def run_cleanup(
    session: Session,
    now: datetime,
    *,
    raw_store: RawStore,
    upload_expiry_hours: float,
    failed_raw_retention_hours: float,
    backoff_seconds: float,
    orphan_grace_seconds: float = ORPHAN_GRACE_SECONDS,
    restack_window_hours: float = 0.0,
) -> CleanupReport:
    """Run every housekeeping step once; each step is its own transaction."""
    reaped = 0
    while True:
        batch = reap_expired_leases(session, now, backoff_seconds=backoff_seconds, limit=REAP_BATCH)
        reaped += len(batch)
        if len(batch) < REAP_BATCH:
            break
    expired = expire_idle_sessions(session, now, expiry_hours=upload_expiry_hours)
    with session.begin():
        failed = retention.release_failed_job_files(
            session, now - timedelta(hours=failed_raw_retention_hours)
        )
        stacked = retention.release_restack_buffer(
            session, now - timedelta(hours=restack_window_hours)
        )
    deletion = retention.delete_freed(session, raw_store, expired.freed + failed + stacked)
    swept = reconcile(
        session,
        now,
        raw_store=raw_store,
        partial_max_age_seconds=upload_expiry_hours * 3600.0,
        orphan_grace_seconds=orphan_grace_seconds,
    )
    return CleanupReport(
        expired_sessions=len(expired.session_ids),
        deleted_files=deletion.files + swept.deleted_files + swept.partials_removed,
        reaped_jobs=reaped,
        removed_dirs=deletion.dirs + swept.removed_dirs,
        orphans_removed=swept.orphans_removed,
        lost_files=swept.lost_files,
    )


def reconcile(
    session: Session,
    now: datetime,
    *,
    raw_store: RawStore,
    partial_max_age_seconds: float,
    orphan_grace_seconds: float = ORPHAN_GRACE_SECONDS,
) -> Reconciliation:
    """Make the raw buffer on disk agree with the committed rows (see the module docstring).

    Visits every session folder on disk and every session that still has stored
    rows (so a folder lost as a whole is reported too). For each, the rows are read
    before the folder is listed: a row committed earlier had its file linked earlier.
    """
    with session.begin():
        live = set(
            session.execute(
                select(UploadSession.storage_path)
                .join(RawFile, RawFile.upload_session_id == UploadSession.id)
                .where(RawFile.is_deleted.is_(False), RawFile.lost_at.is_(None))
                .distinct()
            ).scalars()
        )
    folders = sorted(live | set(raw_store.list_session_folders()))
    wall_now = time.time()
    totals = Reconciliation()
    for folder in folders:
        done = _reconcile_folder(
            session,
            now,
            raw_store,
            folder,
            partial_before=wall_now - partial_max_age_seconds,
            orphan_before=wall_now - orphan_grace_seconds,
        )
        totals = Reconciliation(
            *(a + b for a, b in zip(_counts(totals), _counts(done), strict=True))
        )
    return totals


def _counts(r: Reconciliation) -> tuple[int, int, int, int, int]:
    return (r.deleted_files, r.orphans_removed, r.partials_removed, r.lost_files, r.removed_dirs)


def _reconcile_folder(
    session: Session,
    now: datetime,
    raw_store: RawStore,
    folder: str,
    *,
    partial_before: float,
    orphan_before: float,
) -> Reconciliation:
    with session.begin():
        upload = session.execute(
            select(UploadSession.id, UploadSession.status).where(
                UploadSession.storage_path == folder
            )
        ).one_or_none()
        rows = (
            []
            if upload is None
            else session.execute(
                select(RawFile.id, RawFile.storage_path, RawFile.is_deleted, RawFile.lost_at).where(
                    RawFile.upload_session_id == upload.id
                )
            ).all()
        )
    by_name = {r.storage_path.rsplit("/", 1)[-1]: r for r in rows}
    entries = raw_store.list_folder(folder)
    on_disk = {e.name for e in entries}
    deleted = orphans = partials = 0
    for entry in entries:
        row = by_name.get(entry.name)
        stored = f"{folder}/{entry.name}"
        if entry.name.startswith(PARTIAL_PREFIX):
            if entry.modified < partial_before:
                partials += raw_store.delete_files([stored])
        elif row is not None:
            if row.is_deleted:
                deleted += raw_store.delete_files([stored])
        elif entry.modified < orphan_before:
            log.warning("cleanup.orphan_removed: %s had no committed row", stored)
            orphans += raw_store.delete_files([stored])
    missing = [
        r.id
        for name, r in by_name.items()
        if not r.is_deleted and r.lost_at is None and name not in on_disk
    ]
    lost = 0
    if missing:
        with session.begin():
            lost = retention.mark_lost(session, now, missing)
    removed = 0
    if raw_store.dir_exists(folder) and _folder_unneeded(
        session, upload, raw_store.folder_modified(folder), orphan_before
    ):
        # a finished session takes no more files: a partial in it is abandoned
        removed = int(raw_store.remove_dir_if_empty(folder, keep_if_receiving=upload is None))
    return Reconciliation(deleted, orphans, partials, lost, removed)


def _folder_unneeded(
    session: Session, upload: Row | None, modified: float, orphan_before: float
) -> bool:
    """Whether a session folder may go once empty: no open session and no active job."""
    if upload is None:  # a start that crashed before its commit, or a removed session
        return modified < orphan_before
    if upload.status == SessionStatus.EXPIRED:
        return True
    if upload.status != SessionStatus.COMPLETE:
        return False
    with session.begin():
        return retention.finished_session_dir(session, upload.id) is not None
