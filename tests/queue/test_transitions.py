"""Every transition of the job state machine, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from crowdsky import queue, retention
from crowdsky.db.models import JobAttempt, RawFile, StackedFrame
from crowdsky.db.types import utcnow
from crowdsky.queue import JobStatus
from crowdsky.storage.raw_store import RawStore
from crowdsky.testing import seed_jobs
from tests.db_backends import TestDatabase

LEASE_S = 60


@pytest.fixture
def raw_store(tmp_path: Path) -> RawStore:
    return RawStore(tmp_path / "uploads")


def _claim(db: TestDatabase, worker: str = "w1", now=None):  # type: ignore[no-untyped-def]
    with db.session_factory() as session:
        return queue.claim_next_job(
            session, now or utcnow(), worker_id=worker, lease_seconds=LEASE_S
        )


def _completion(job_id: int, **overrides: object) -> queue.Completion:
    values: dict[str, object] = {
        "job_id": job_id,
        "ucloud_path": f"/crowdsky/stacks/user_1/M_94/stack_{job_id}.fits",
        "thumbnail_path": f"/crowdsky/stacks/user_1/M_94/stack_{job_id}_thumb.png",
        "n_frames_input": 3,
        "n_frames_aligned": 2,
        "total_exptime": 20.0,
        "ra_deg": 192.72,
        "dec_deg": 41.12,
        "file_size_bytes": 123,
        "n_stars_detected": 40,
    }
    values.update(overrides)
    return queue.Completion(**values)  # type: ignore[arg-type]


def _fail(db: TestDatabase, job_id: int, message: str = "boom", **kwargs: object):  # type: ignore[no-untyped-def]
    with db.session_factory() as session:
        return queue.fail_job(
            session,
            kwargs.pop("now", None) or utcnow(),  # type: ignore[arg-type]
            job_id=job_id,
            error_message=message,
            backoff_seconds=kwargs.pop("backoff", 0.0),  # type: ignore[arg-type]
            **kwargs,  # type: ignore[arg-type]
        )


def test_enqueue_refuses_a_job_without_files(test_db: TestDatabase) -> None:
    with test_db.session_factory() as session, pytest.raises(ValueError, match="no raw files"):
        queue.enqueue_jobs(
            session,
            utcnow(),
            [queue.NewJob(user_id=1, upload_session_id=1, chunk_key="x", raw_file_ids=())],
        )


def test_claim_hands_out_oldest_pending_first_then_nothing(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    ids = seed_jobs(test_db.session_factory, raw_store, n_jobs=3, files_per_job=2)
    claimed = [_claim(test_db, f"w{i}") for i in range(3)]
    assert [c.job_id for c in claimed if c] == ids
    first = claimed[0]
    assert first is not None
    assert first.frame_count == 2 and first.attempt == 1 and len(first.lease_token) == 32
    assert first.lease_expires_at > utcnow()
    assert _claim(test_db) is None
    with test_db.session_factory() as session:
        snapshot = queue.get_job(session, ids[0])
    assert snapshot.status == JobStatus.PROCESSING and snapshot.worker_id == "w0"


def test_pending_jobs_go_before_retries(test_db: TestDatabase, raw_store: RawStore) -> None:
    old, new = seed_jobs(test_db.session_factory, raw_store, n_jobs=2)
    assert _claim(test_db).job_id == old  # type: ignore[union-attr]
    assert _fail(test_db, old).status == JobStatus.RETRY
    # the older job is now a retry; the newer pending job still goes first
    assert _claim(test_db).job_id == new  # type: ignore[union-attr]
    assert _claim(test_db).job_id == old  # type: ignore[union-attr]


def test_retry_waits_for_its_backoff(test_db: TestDatabase, raw_store: RawStore) -> None:
    (job_id,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1)
    now = utcnow()
    _claim(test_db, now=now)
    outcome = _fail(test_db, job_id, now=now, backoff=30.0)
    assert outcome.not_before == now + timedelta(seconds=30)
    assert _claim(test_db, now=now + timedelta(seconds=29)) is None
    assert _claim(test_db, now=now + timedelta(seconds=31)).job_id == job_id  # type: ignore[union-attr]
    second = _fail(test_db, job_id, now=now + timedelta(seconds=31), backoff=30.0)
    assert second.not_before == now + timedelta(seconds=31 + 60)  # doubled


def test_third_failure_is_terminal_and_keeps_every_error(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    (job_id,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1)
    statuses = []
    for attempt in range(1, 4):
        assert _claim(test_db).job_id == job_id  # type: ignore[union-attr]
        statuses.append(_fail(test_db, job_id, f"error {attempt}").status)
    assert statuses == [JobStatus.RETRY, JobStatus.RETRY, JobStatus.FAILED]
    assert _claim(test_db) is None  # failed is terminal
    with test_db.session_factory() as session:
        snap = queue.get_job(session, job_id)
    assert snap.status == JobStatus.FAILED and snap.retry_count == 3 and snap.attempts == 3
    assert snap.errors == ("error 1", "error 2", "error 3")
    assert snap.error_message == "error 3"
    with pytest.raises(queue.WrongState):
        _fail(test_db, job_id)


def test_fail_without_message_stores_a_default(test_db: TestDatabase, raw_store: RawStore) -> None:
    (job_id,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1)
    _claim(test_db)
    _fail(test_db, job_id, "   ")
    with test_db.session_factory() as session:
        assert queue.get_job(session, job_id).error_message == "Unknown error"


def test_expired_lease_returns_job_to_queue_as_failed_attempt(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    (job_id,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1)
    now = utcnow()
    claimed = _claim(test_db, "dead-worker", now=now)
    assert claimed is not None
    with test_db.session_factory() as session:
        assert queue.reap_expired_leases(session, now, backoff_seconds=0) == []
        reaped = queue.reap_expired_leases(
            session, now + timedelta(seconds=LEASE_S + 1), backoff_seconds=0
        )
    assert [(o.job_id, o.status) for o in reaped] == [(job_id, JobStatus.RETRY)]
    again = _claim(test_db, "live-worker", now=now + timedelta(seconds=LEASE_S + 2))
    assert again is not None and again.job_id == job_id and again.attempt == 2
    # the dead worker's late report is refused: the job is held by someone else now
    with test_db.session_factory() as session, pytest.raises(queue.HeldByOtherWorker):
        queue.complete_job(
            session,
            utcnow(),
            _completion(job_id),
            worker_id="dead-worker",
        )
    with test_db.session_factory() as session, pytest.raises(queue.HeldByOtherWorker):
        queue.fail_job(
            session,
            utcnow(),
            job_id=job_id,
            error_message="late",
            backoff_seconds=0,
            lease_token=claimed.lease_token,
        )
    with test_db.session_factory() as session:
        history = session.execute(
            select(JobAttempt.outcome, JobAttempt.worker_id).where(
                JobAttempt.stacking_job_id == job_id
            )
        ).all()
    assert [tuple(h) for h in history] == [("lease_expired", "dead-worker")]


def test_lease_expiry_counts_toward_the_three_attempts(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    (job_id,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1)
    now = utcnow()
    for attempt in range(3):
        t = now + timedelta(seconds=attempt * (LEASE_S + 10))
        assert _claim(test_db, now=t) is not None
        with test_db.session_factory() as session:
            reaped = queue.reap_expired_leases(
                session, t + timedelta(seconds=LEASE_S + 1), backoff_seconds=0
            )
    assert reaped[0].status == JobStatus.FAILED
    with test_db.session_factory() as session:
        snap = queue.get_job(session, job_id)
    assert snap.status == JobStatus.FAILED and len(snap.errors) == 3
    assert "lease expired" in snap.errors[0]


def test_heartbeat_extends_the_lease_and_records_progress(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    (job_id,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1)
    now = utcnow()
    claimed = _claim(test_db, now=now)
    assert claimed is not None
    later = now + timedelta(seconds=LEASE_S - 1)
    with test_db.session_factory() as session:
        renewal = queue.extend_lease(
            session,
            later,
            job_id=job_id,
            lease_seconds=LEASE_S,
            worker_id="w1",
            lease_token=claimed.lease_token,
            progress=queue.ProgressReport(0.5, "stacking 5/10"),
        )
        assert renewal.lease_expires_at == later + timedelta(seconds=LEASE_S)
        # past the original expiry, but the renewed lease keeps the job
        assert (
            queue.reap_expired_leases(
                session, now + timedelta(seconds=LEASE_S + 5), backoff_seconds=0
            )
            == []
        )
        assert queue.get_job(session, job_id).progress == 0.5
        with pytest.raises(queue.HeldByOtherWorker):
            queue.extend_lease(
                session, later, job_id=job_id, lease_seconds=LEASE_S, worker_id="intruder"
            )
        with pytest.raises(queue.JobNotFound):
            queue.extend_lease(session, later, job_id=999_999, lease_seconds=LEASE_S)


def test_complete_records_result_then_deletes_raws_and_session_folder(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    first, second = seed_jobs(test_db.session_factory, raw_store, n_jobs=2, files_per_job=3)
    with test_db.session_factory() as session:
        claimed = queue.claim_next_job(session, utcnow(), worker_id="w1", lease_seconds=LEASE_S)
        assert claimed is not None
        files = queue.list_job_files(session, job_id=first)
    paths = [raw_store.resolve(f.storage_path) for f in files.files]
    assert len(paths) == 3 and all(p.is_file() for p in paths)
    session_dir = raw_store.resolve(claimed.session_path)
    with test_db.session_factory() as session:
        outcome = queue.complete_job(
            session,
            utcnow(),
            _completion(first),
            worker_id="w1",
            lease_token=claimed.lease_token,
        )
    assert not outcome.repeated and outcome.freed is not None
    assert sorted(outcome.freed.paths) == sorted(f.storage_path for f in files.files)
    assert all(p.is_file() for p in paths), "the queue deletes nothing itself"
    assert outcome.freed.session_dirs == ()  # the second job still needs the folder
    with test_db.session_factory() as session:
        assert retention.delete_freed(session, raw_store, outcome.freed).files == 3
    assert not any(p.exists() for p in paths)
    assert session_dir.is_dir()  # the second job still needs its files
    with test_db.session_factory() as session, session.begin():
        row = session.execute(
            select(StackedFrame).where(StackedFrame.stacking_job_id == first)
        ).scalar_one()
        assert (row.n_frames_input, row.n_frames_aligned, row.n_stars_detected) == (3, 2, 40)
        assert row.chunk_key and row.object_name == "M 94" and row.worker_id == "w1"
        deleted = (
            session.execute(select(RawFile.is_deleted).where(RawFile.stacking_job_id == first))
            .scalars()
            .all()
        )
        assert deleted == [True, True, True]
    with test_db.session_factory() as session:
        assert queue.get_job(session, first).status == JobStatus.COMPLETED
    # completing the last job removes the session folder
    _claim(test_db)
    with test_db.session_factory() as session:
        outcome = queue.complete_job(session, utcnow(), _completion(second))
        assert outcome.freed is not None and len(outcome.freed.session_dirs) == 1
        assert retention.delete_freed(session, raw_store, outcome.freed).dirs == 1
    assert not session_dir.exists()


def test_repeated_identical_completion_is_ok_a_different_one_is_refused(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    (job_id,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1)
    _claim(test_db)
    start = utcnow() - timedelta(hours=2)
    dates = {"date_obs_start": start, "date_obs_end": start + timedelta(minutes=5)}
    with test_db.session_factory() as session:
        queue.complete_job(session, utcnow(), _completion(job_id, **dates))
        again = queue.complete_job(session, utcnow(), _completion(job_id, **dates), worker_id="w1")
        assert again.repeated
        for different in (
            {**dates, "n_frames_aligned": 1},
            {**dates, "date_obs_start": start - timedelta(seconds=1)},
            {**dates, "date_obs_end": None},
        ):
            with pytest.raises(queue.AlreadyCompleted):
                queue.complete_job(session, utcnow(), _completion(job_id, **different))
    with test_db.session_factory() as session, session.begin():
        count = session.execute(select(StackedFrame.id)).scalars().all()
    assert len(count) == 1


def test_completion_floats_round_trip_and_a_repeat_matches_a_single_precision_row(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    precise = {"ra_deg": 192.7213458123, "dec_deg": 41.1203456789, "total_exptime": 150.000001}
    (job_id,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1)
    _claim(test_db)
    with test_db.session_factory() as session:
        queue.complete_job(session, utcnow(), _completion(job_id, **precise))
    with test_db.session_factory() as session, session.begin():
        frame = session.execute(select(StackedFrame)).scalar_one()
        assert (frame.ra_deg, frame.dec_deg, frame.total_exptime) == (
            precise["ra_deg"],
            precise["dec_deg"],
            precise["total_exptime"],
        )
        # what a MariaDB FLOAT column (before migration 0002) handed back: 6 digits
        frame.ra_deg, frame.dec_deg, frame.total_exptime = 192.721, 41.1203, 150.0
    with test_db.session_factory() as session:
        again = queue.complete_job(session, utcnow(), _completion(job_id, **precise))
        assert again.repeated
        with pytest.raises(queue.AlreadyCompleted):
            queue.complete_job(
                session,
                utcnow(),
                _completion(job_id, **{**precise, "ra_deg": 192.8}),
            )


def test_completion_checks_state_and_holder(test_db: TestDatabase, raw_store: RawStore) -> None:
    pending_job, held_job = seed_jobs(test_db.session_factory, raw_store, n_jobs=2)
    with test_db.session_factory() as session, pytest.raises(queue.JobNotFound):
        queue.complete_job(session, utcnow(), _completion(999_999))
    claimed = _claim(test_db, "w1")
    assert claimed is not None and claimed.job_id == pending_job
    with test_db.session_factory() as session:
        with pytest.raises(queue.WrongState):
            queue.complete_job(session, utcnow(), _completion(held_job))
        strangers: list[dict[str, str]] = [
            {"worker_id": "w2"},
            *({"lease_token": t} for t in ("0" * 32, "é" * 32, "\ud800")),  # any text
        ]
        for stranger in strangers:
            with pytest.raises(queue.HeldByOtherWorker):
                queue.complete_job(
                    session,
                    utcnow(),
                    _completion(pending_job),
                    **stranger,  # type: ignore[arg-type]
                )
        # nothing changed: the holder can still complete
        queue.complete_job(session, utcnow(), _completion(pending_job), worker_id="w1")


def test_inputs_are_only_visible_while_processing(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    (job_id,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1)
    with test_db.session_factory() as session:
        with session.begin():
            file_id = (
                session.execute(select(RawFile.id).where(RawFile.stacking_job_id == job_id))
                .scalars()
                .first()
            )
        assert file_id is not None
        with pytest.raises(queue.WrongState):
            queue.list_job_files(session, job_id=job_id)
        with pytest.raises(queue.WrongState):
            queue.locate_raw_file(session, file_id=file_id)
        with pytest.raises(queue.RawFileNotFound):
            queue.locate_raw_file(session, file_id=999_999)
    _claim(test_db, "w1")
    with test_db.session_factory() as session:
        listing = queue.list_job_files(session, job_id=job_id, worker_id="w1")
        assert [f.date_obs for f in listing.files] == sorted(f.date_obs for f in listing.files)  # type: ignore[type-var]
        assert queue.locate_raw_file(session, file_id=file_id).id == file_id
        with pytest.raises(queue.HeldByOtherWorker):
            queue.list_job_files(session, job_id=job_id, worker_id="w2")


def test_concurrent_claims_never_hand_out_a_job_twice(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    ids = seed_jobs(test_db.session_factory, raw_store, n_jobs=60, files_per_job=1)
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while True:
            job = _claim(test_db, name)
            if job is None:
                return
            with lock:
                claimed.append(job.job_id)

    threads = [threading.Thread(target=claimer, args=(f"t{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(claimed) == sorted(ids)


def test_release_hands_a_job_back_without_a_failed_attempt(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    (job_id,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1)
    claimed = _claim(test_db, "leaving")
    assert claimed is not None
    with test_db.session_factory() as session:
        with pytest.raises(queue.HeldByOtherWorker):
            queue.release_job(session, utcnow(), job_id=job_id, worker_id="other")
        outcome = queue.release_job(
            session,
            utcnow(),
            job_id=job_id,
            reason="SIGTERM",
            worker_id="leaving",
            lease_token=claimed.lease_token,
        )
    assert outcome.status == JobStatus.PENDING
    again = _claim(test_db, "next")
    assert again is not None and again.job_id == job_id and again.attempt == 2
    _fail(test_db, job_id, "real failure")
    assert _claim(test_db, "third") is not None
    with test_db.session_factory() as session:
        assert queue.release_job(session, utcnow(), job_id=job_id).status == JobStatus.RETRY
        snap = queue.get_job(session, job_id)
        with pytest.raises(queue.WrongState):
            queue.release_job(session, utcnow(), job_id=job_id)
    assert snap.retry_count == 1  # only the real failure counts
    assert snap.errors == ("SIGTERM", "real failure", "released by the worker")
