"""An upload intake on a real database and raw store, driven through ``crowdsky.ingest``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from crowdsky import ingest, queue, retention
from crowdsky.cleanup import CleanupReport, run_cleanup
from crowdsky.db.models import RawFile
from crowdsky.db.types import utcnow
from crowdsky.storage.raw_store import RawStore
from crowdsky.testing import ensure_user
from tests.db_backends import TestDatabase
from tests.ingest.fits_factory import write_sequence

MAX_UPLOAD_BYTES = 1 << 20
EXPIRY_HOURS = 24.0
FAILED_RETENTION_HOURS = 168.0


@dataclass
class Intake:
    """One user's uploads: start, send, finalize, status, as the upload route calls them."""

    db: TestDatabase
    raw_store: RawStore
    user_id: int
    settings: ingest.IntakeSettings = field(
        default_factory=lambda: ingest.IntakeSettings(min_frames=3, expiry_hours=EXPIRY_HOURS)
    )

    def start(self, now: datetime | None = None) -> str:
        with self.db.session_factory() as session:
            return ingest.start_session(
                session, now or utcnow(), user_id=self.user_id, raw_store=self.raw_store
            )

    def send(self, token: str, path: Path, now: datetime | None = None) -> ingest.ReceivedFile:
        now = now or utcnow()
        with self.db.session_factory() as session:
            ref = ingest.open_session(
                session,
                now,
                user_id=self.user_id,
                token=token,
                expiry_hours=self.settings.expiry_hours,
            )
            partial = self.raw_store.open_partial(ref.storage_path, MAX_UPLOAD_BYTES)
            partial.write(path.read_bytes())
            sha256 = partial.finish()
            return ingest.receive_file(
                session,
                now,
                ref=ref,
                partial=partial,
                sha256=sha256,
                client_name=path.name,
                raw_store=self.raw_store,
                intake=self.settings,
            )

    def upload(self, paths: Sequence[Path]) -> str:
        """A new session holding ``paths``; returns its token."""
        token = self.start()
        for path in paths:
            self.send(token, path)
        return token

    def night_with_a_small_group(self, n_frames: int) -> tuple[list[Path], list[Path]]:
        """``n_frames`` frames of M 94, and 2 of M 51 in the same slot (too few for a job)."""
        folder = self.raw_store.root.parent / "night"
        m94 = write_sequence(folder, n_frames)
        m51 = write_sequence(folder, 2, ra=202.47, dec=47.2, seed=7, prefix="M51")
        return m94, m51

    def finalize(self, token: str, *, overwrite: bool = False) -> ingest.FinalizeResult:
        with self.db.session_factory() as session:
            return ingest.finalize_session(
                session,
                utcnow(),
                user_id=self.user_id,
                token=token,
                raw_store=self.raw_store,
                intake=self.settings,
                overwrite=overwrite,
            )

    def status(self, token: str, now: datetime | None = None) -> ingest.SessionReport:
        with self.db.session_factory() as session:
            return ingest.session_status(
                session,
                now or utcnow(),
                user_id=self.user_id,
                token=token,
                expiry_hours=self.settings.expiry_hours,
            )

    def cleanup(self, now: datetime) -> CleanupReport:
        with self.db.session_factory() as session:
            return run_cleanup(
                session,
                now,
                raw_store=self.raw_store,
                upload_expiry_hours=EXPIRY_HOURS,
                failed_raw_retention_hours=FAILED_RETENTION_HOURS,
                backoff_seconds=0,
            )

    def complete(self, job_id: int, *, restack_window_hours: float = 0.0) -> retention.Deletion:
        """Claim the next job (it must be ``job_id``) and complete it as a worker would."""
        return self.finish(self.claim(job_id), restack_window_hours=restack_window_hours)

    def claim(self, job_id: int) -> queue.ClaimedJob:
        """Claim the next job as worker ``w``; it must be ``job_id``."""
        with self.db.session_factory() as session:
            claimed = queue.claim_next_job(session, utcnow(), worker_id="w", lease_seconds=60)
            assert claimed is not None and claimed.job_id == job_id
            return claimed

    def finish(
        self, claimed: queue.ClaimedJob, *, restack_window_hours: float = 0.0
    ) -> retention.Deletion:
        """Complete a claimed job with a stack of every frame it lists."""
        with self.db.session_factory() as session:
            files = queue.list_job_files(session, job_id=claimed.job_id)
            outcome = queue.complete_job(
                session,
                utcnow(),
                queue.Completion(
                    job_id=claimed.job_id,
                    ucloud_path=f"stacks/{claimed.job_id}.fits",
                    n_frames_input=len(files.files),
                ),
                worker_id="w",
                lease_token=claimed.lease_token,
                restack_window_hours=restack_window_hours,
            )
            assert outcome.freed is not None
            return retention.delete_freed(session, self.raw_store, outcome.freed)

    def session_dir(self, token: str) -> Path:
        return self.raw_store.resolve(self.raw_store.session_dir(self.user_id, token))

    def job_files_on_disk(self, job_id: int) -> list[Path]:
        """The stored files of a job's frames that are still on disk."""
        with self.db.session_factory() as session, session.begin():
            paths = session.execute(
                select(RawFile.storage_path).where(RawFile.stacking_job_id == job_id)
            ).scalars()
            return [p for p in map(self.raw_store.resolve, paths) if p.is_file()]


@pytest.fixture
def intake(test_db: TestDatabase, tmp_path: Path) -> Intake:
    """The intake of user ``alice`` on each backend in turn."""
    with test_db.session_factory() as session:
        user_id = ensure_user(session, "alice")
    return Intake(test_db, RawStore(tmp_path / "uploads"), user_id)
