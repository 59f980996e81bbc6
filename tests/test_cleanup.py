"""Cleanup: abandoned uploads expire, reaped leases return, and no needed raw is ever deleted."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from crowdsky import queue
from crowdsky.cleanup import ORPHAN_GRACE_SECONDS, run_cleanup
from crowdsky.db.models import RawFile, UploadSession
from crowdsky.db.types import utcnow
from crowdsky.queue import JobStatus
from crowdsky.storage.raw_store import RawStore
from crowdsky.testing import ensure_user, seed_jobs
from tests.db_backends import TestDatabase

EXPIRY_H = 24.0
RETENTION_H = 168.0


@pytest.fixture
def raw_store(tmp_path: Path) -> RawStore:
    return RawStore(tmp_path / "uploads")


def _cleanup(db: TestDatabase, raw_store: RawStore, now=None):  # type: ignore[no-untyped-def]
    with db.session_factory() as session:
        return run_cleanup(
            session,
            now or utcnow(),
            raw_store=raw_store,
            upload_expiry_hours=EXPIRY_H,
            failed_raw_retention_hours=RETENTION_H,
            backoff_seconds=0,
        )


def _open_upload(db: TestDatabase, raw_store: RawStore, idle_hours: float) -> Path:
    """An `uploading` session with one file, last active ``idle_hours`` ago."""
    now = utcnow()
    with db.session_factory() as session:
        user_id = ensure_user(session, "uploader")
        token = f"{int(idle_hours * 1000):032d}"
        folder = raw_store.session_dir(user_id, token)
        raw_store.resolve(folder).mkdir(parents=True)
        (raw_store.resolve(folder) / "a.fit").write_bytes(b"SIMPLE")
        (raw_store.resolve(folder) / ".upload-partial").write_bytes(b"half")
        with session.begin():
            upload = UploadSession(
                user_id=user_id,
                session_token=token,
                status="uploading",
                storage_path=folder,
                created_at=now - timedelta(hours=idle_hours + 100),
                last_activity_at=now - timedelta(hours=idle_hours),
            )
            session.add(upload)
            session.flush()
            session.add(_raw_row(upload, "a.fit"))
    return raw_store.resolve(folder)


def _raw_row(upload: UploadSession, name: str) -> RawFile:
    """A frame row of ``upload`` stored as ``name`` (6 bytes, placeholder hash)."""
    return RawFile(
        upload_session_id=upload.id,
        filename=name,
        storage_path=f"{upload.storage_path}/{name}",
        file_size_bytes=6,
        sha256=hashlib.sha256(name.encode()).hexdigest(),
    )


def test_idle_uploads_expire_active_ones_stay(test_db: TestDatabase, raw_store: RawStore) -> None:
    idle = _open_upload(test_db, raw_store, idle_hours=EXPIRY_H + 1)
    active = _open_upload(test_db, raw_store, idle_hours=1)  # old, but recently active
    report = _cleanup(test_db, raw_store)
    assert report.expired_sessions == 1 and report.deleted_files >= 1
    assert not idle.exists(), "the expired session's folder (and partial uploads) must go"
    assert (active / "a.fit").exists()
    assert report.summary().startswith("Cleanup done: 1 expired sessions, ")
    with test_db.session_factory() as session, session.begin():
        statuses = sorted(session.execute(select(UploadSession.status)).scalars())
        deleted = sorted(session.execute(select(RawFile.is_deleted)).scalars())
    assert statuses == ["expired", "uploading"] and deleted == [False, True]
    assert _cleanup(test_db, raw_store).expired_sessions == 0  # idempotent


def test_raws_of_waiting_running_or_retrying_jobs_are_never_deleted(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    to_retry, running, _waiting = seed_jobs(
        test_db.session_factory,
        raw_store,
        n_jobs=3,
        files_per_job=2,
        now=utcnow() - timedelta(days=30),  # very old jobs, long-finished session
    )
    with test_db.session_factory() as session:
        queue.claim_next_job(session, utcnow(), worker_id="w", lease_seconds=3600)
        queue.claim_next_job(session, utcnow(), worker_id="w", lease_seconds=3600)
        queue.fail_job(session, utcnow(), job_id=to_retry, error_message="x", backoff_seconds=0)
    # now one job is in retry, one processing (lease renewed below) and one still pending
    far_future = utcnow() + timedelta(days=365)
    with test_db.session_factory() as session:
        queue.extend_lease(session, far_future, job_id=running, lease_seconds=3600)
    report = _cleanup(test_db, raw_store, now=far_future)
    assert report.deleted_files == 0 and report.reaped_jobs == 0
    files = list(raw_store.root.rglob("*.fit"))
    assert len(files) == 6


def test_jobless_stored_frames_of_a_finalized_session_are_kept(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    """A finalize releases its skipped frames in its own commit, so a stored frame without
    a job in a finalized session comes only from before that fix, when a crash left
    sessions finalized without their jobs: it may be the only copy, so it stays."""
    long_ago = utcnow() - timedelta(days=30)
    to_retry, running, _waiting = seed_jobs(
        test_db.session_factory, raw_store, n_jobs=3, files_per_job=2, now=long_ago
    )
    with test_db.session_factory() as session:
        queue.claim_next_job(session, utcnow(), worker_id="w", lease_seconds=3600)
        queue.claim_next_job(session, utcnow(), worker_id="w", lease_seconds=3600)
        queue.fail_job(session, utcnow(), job_id=to_retry, error_message="x", backoff_seconds=0)
    with test_db.session_factory() as session, session.begin():
        upload = session.execute(select(UploadSession)).scalar_one()
        folder = raw_store.resolve(upload.storage_path)
        (folder / "skipped.fit").write_bytes(b"SIMPLE")
        session.add(_raw_row(upload, "skipped.fit"))
    far_future = utcnow() + timedelta(days=365)
    with test_db.session_factory() as session:
        queue.extend_lease(session, far_future, job_id=running, lease_seconds=3600)
    report = _cleanup(test_db, raw_store, now=far_future)
    assert report.deleted_files == 0 and report.reaped_jobs == 0
    assert (folder / "skipped.fit").exists()
    assert len(list(folder.glob("job*.fit"))) == 6
    with test_db.session_factory() as session, session.begin():
        flags = {r.filename: r.is_deleted for r in session.execute(select(RawFile)).scalars()}
    assert not any(flags.values())


def test_expired_leases_are_reaped_by_cleanup(test_db: TestDatabase, raw_store: RawStore) -> None:
    (job_id,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1)
    with test_db.session_factory() as session:
        queue.claim_next_job(session, utcnow(), worker_id="gone", lease_seconds=60)
    report = _cleanup(test_db, raw_store, now=utcnow() + timedelta(seconds=61))
    assert report.reaped_jobs == 1
    with test_db.session_factory() as session:
        assert queue.get_job(session, job_id).status == JobStatus.RETRY


def test_failed_job_raws_are_kept_for_the_retention_period(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    (job_id,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1, files_per_job=2)
    for _ in range(3):
        with test_db.session_factory() as session:
            queue.claim_next_job(session, utcnow(), worker_id="w", lease_seconds=60)
            queue.fail_job(session, utcnow(), job_id=job_id, error_message="bad", backoff_seconds=0)
    assert _cleanup(test_db, raw_store).deleted_files == 0
    report = _cleanup(test_db, raw_store, now=utcnow() + timedelta(hours=RETENTION_H + 1))
    assert report.deleted_files == 2
    assert not list(raw_store.root.rglob("*.fit"))
    assert not any(raw_store.root.iterdir()), "the emptied session folder is removed too"


def test_files_left_by_an_interrupted_deletion_are_removed(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    (job_id,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1, files_per_job=2)
    # simulate a crash between the commit (rows marked deleted) and the unlink
    with test_db.session_factory() as session, session.begin():
        session.execute(update(RawFile).values(is_deleted=True))
        session.execute(
            update(queue_table()).where(queue_table().c.id == job_id).values(status="completed")
        )
    report = _cleanup(test_db, raw_store)
    assert report.deleted_files == 2 and report.removed_dirs == 1
    assert not list(raw_store.root.rglob("*.fit"))


def queue_table():  # type: ignore[no-untyped-def]
    from crowdsky.db.models import StackingJob

    return StackingJob.__table__


def _age(path: Path, hours: float) -> None:
    moment = time.time() - hours * 3600
    os.utime(path, (moment, moment))


def test_orphans_and_old_partials_go_young_ones_stay(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    """A crash between linking a file and committing its row leaves a file without a row;
    a crash mid-stream leaves a partial. Cleanup removes each once it is old enough."""
    folder = _open_upload(test_db, raw_store, idle_hours=1)  # open: a.fit + a partial
    _age(folder / ".upload-partial", EXPIRY_H + 1)
    (folder / ".upload-young").write_bytes(b"streaming")
    (folder / "orphan.fit").write_bytes(b"SIMPLE")
    _age(folder / "orphan.fit", ORPHAN_GRACE_SECONDS / 3600 + 1)
    (folder / "linking.fit").write_bytes(b"SIMPLE")  # its row may commit any moment
    report = _cleanup(test_db, raw_store)
    assert report.orphans_removed == 1 and report.lost_files == 0
    assert sorted(p.name for p in folder.iterdir()) == [".upload-young", "a.fit", "linking.fit"]
    # a folder whose session never committed (a crashed start) goes once old
    stray = raw_store.resolve("user_99/sess_" + "f" * 32)
    stray.mkdir(parents=True)
    assert _cleanup(test_db, raw_store).removed_dirs == 0
    _age(stray, ORPHAN_GRACE_SECONDS / 3600 + 1)
    assert _cleanup(test_db, raw_store).removed_dirs == 1 and not stray.exists()


def test_a_row_whose_file_is_missing_is_reported_not_stacked(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    (job_id,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1, files_per_job=3)
    with test_db.session_factory() as session, session.begin():
        lost_path = session.execute(
            select(RawFile.storage_path).where(RawFile.stacking_job_id == job_id).limit(1)
        ).scalar_one()
    raw_store.resolve(lost_path).unlink()
    report = _cleanup(test_db, raw_store)
    assert report.lost_files == 1 and report.deleted_files == 0
    assert "1 missing files reported" in report.summary()
    assert _cleanup(test_db, raw_store).lost_files == 0, "reported once"
    with test_db.session_factory() as session, session.begin():
        lost = session.execute(
            select(RawFile).where(RawFile.storage_path == lost_path)
        ).scalar_one()
        assert lost.lost_at is not None and not lost.is_deleted
    with test_db.session_factory() as session:
        claimed = queue.claim_next_job(session, utcnow(), worker_id="w", lease_seconds=60)
        assert claimed is not None
        listed = queue.list_job_files(session, job_id=job_id)
    assert len(listed.files) == 2, "the lost frame is not handed to the worker"


def test_an_s3_buffer_is_reconciled_through_its_listing(
    test_db: TestDatabase, seaweedfs, s3_bucket: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The same reconciliation on an object store: objects have no local path."""
    from crowdsky.storage import s3_client
    from crowdsky.storage.s3_raw_store import S3RawStore

    env = seaweedfs.s3_env()
    options = s3_client.S3Options(
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region=env["AWS_DEFAULT_REGION"],
        access_key_id=env["AWS_ACCESS_KEY_ID"],
        secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    store = S3RawStore(
        s3_client.make_client(options),
        s3_client.parse_s3_url(f"s3://{s3_bucket}/raws"),
        tmp_path / "staging",
    )
    try:
        now = utcnow()
        with test_db.session_factory() as session:
            user_id = ensure_user(session, "s3-uploader")
            folder = store.session_dir(user_id, "e" * 32)
            with session.begin():
                upload = UploadSession(
                    user_id=user_id,
                    session_token="e" * 32,
                    status="uploading",
                    storage_path=folder,
                    created_at=now,
                    last_activity_at=now,
                )
                session.add(upload)
                session.flush()
                session.add_all([_raw_row(upload, "kept.fit"), _raw_row(upload, "lost.fit")])
        for name in ("kept.fit", "orphan.fit"):
            store.client.put_object(
                Bucket=store.location.bucket, Key=store.key(f"{folder}/{name}"), Body=b"SIMPLE"
            )
        assert sorted(store.list_session_folders()) == [folder]
        with test_db.session_factory() as session:
            report = run_cleanup(
                session,
                utcnow(),
                raw_store=store,
                upload_expiry_hours=EXPIRY_H,
                failed_raw_retention_hours=RETENTION_H,
                backoff_seconds=0,
                orphan_grace_seconds=0,
            )
        assert report.orphans_removed == 1 and report.lost_files == 1
        assert [e.name for e in store.list_folder(folder)] == ["kept.fit"]
    finally:
        store.remove_dir(folder)
        store.close()
