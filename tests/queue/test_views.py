"""``queue/views.py``: the read-only views of a user's jobs and stacks, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from crowdsky import queue
from crowdsky.db.models import StackedFrame, UploadSession
from crowdsky.db.types import utcnow
from crowdsky.queue import JobStatus
from crowdsky.storage.raw_store import RawStore
from crowdsky.testing import DEFAULT_USER, ensure_user, seed_jobs
from tests.db_backends import TestDatabase

START = datetime(2025, 3, 27, 1, 20, tzinfo=UTC)


@pytest.fixture
def raw_store(tmp_path: Path) -> RawStore:
    return RawStore(tmp_path / "uploads")


def _user_id(db: TestDatabase, username: str = DEFAULT_USER) -> int:
    with db.session_factory() as session:
        return ensure_user(session, username)


def _finish(db: TestDatabase, job_id: int, hour: int) -> None:
    """Claim ``job_id`` (the oldest pending) and complete it with one rejected frame."""
    with db.session_factory() as session:
        claimed = queue.claim_next_job(session, utcnow(), worker_id="w1", lease_seconds=60)
    assert claimed is not None and claimed.job_id == job_id
    completion = queue.Completion(
        job_id=job_id,
        ucloud_path=f"/stacks/stack_{job_id}.fits",
        n_frames_input=2,
        n_frames_aligned=1,
        date_obs_start=START.replace(hour=hour),
        file_size_bytes=10,
        rejected_frames=(("a.fit", "too few stars"),),
    )
    with db.session_factory() as session:
        queue.complete_job(
            session, utcnow(), completion, worker_id="w1", lease_token=claimed.lease_token
        )


def test_jobs_are_listed_oldest_first_and_limited_to_the_newest(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    ids = seed_jobs(test_db.session_factory, raw_store, n_jobs=3, files_per_job=2)
    user_id, bob_id = _user_id(test_db), _user_id(test_db, "bob")
    with test_db.session_factory() as session:
        jobs = queue.list_user_jobs(session, user_id=user_id)
        newest_two = queue.list_user_jobs(session, user_id=user_id, limit=2)
        other_user = queue.list_user_jobs(session, user_id=bob_id)
    assert [job.job_id for job in jobs] == ids
    assert [job.job_id for job in newest_two] == ids[1:]
    assert all(job.status is JobStatus.PENDING and job.frame_count == 2 for job in jobs)
    assert all(job.stack is None and job.errors == () for job in jobs)
    assert other_user == []


def test_a_session_token_selects_its_jobs_and_another_token_none(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    ids = seed_jobs(test_db.session_factory, raw_store, n_jobs=2)
    user_id, bob_id = _user_id(test_db), _user_id(test_db, "bob")
    with test_db.session_factory() as session, session.begin():
        token = session.execute(select(UploadSession.session_token)).scalar_one()
    with test_db.session_factory() as session:
        mine = queue.list_user_jobs(session, user_id=user_id, session_token=token)
        unknown = queue.list_user_jobs(session, user_id=user_id, session_token="no-such")
        foreign = queue.list_user_jobs(session, user_id=bob_id, session_token=token)
    assert [job.job_id for job in mine] == ids
    assert unknown == [] and foreign == []


def test_get_job_carries_the_error_history_and_the_stack(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    (job_id,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1)
    with test_db.session_factory() as session:
        queue.claim_next_job(session, utcnow(), worker_id="w1", lease_seconds=60)
    with test_db.session_factory() as session:
        queue.fail_job(
            session, utcnow(), job_id=job_id, error_message="disk full", backoff_seconds=0.0
        )
    _finish(test_db, job_id, hour=1)
    with test_db.session_factory() as session:
        job = queue.get_job(session, job_id)
    assert job.status is JobStatus.COMPLETED and job.errors == ("disk full",)
    assert job.stack is not None and job.stack.job_id == job_id
    assert job.stack.rejected_frames == (("a.fit", "too few stars"),)
    with test_db.session_factory() as session, pytest.raises(queue.JobNotFound):
        queue.get_job(session, job_id + 1000)


def test_stacks_newest_observation_first_by_object_and_damage_tolerant(
    test_db: TestDatabase, raw_store: RawStore
) -> None:
    (first,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1, object_name="M 94")
    (second,) = seed_jobs(test_db.session_factory, raw_store, n_jobs=1, object_name="M 81")
    _finish(test_db, first, hour=1)
    _finish(test_db, second, hour=3)
    user_id = _user_id(test_db)
    with test_db.session_factory() as session:
        every = queue.list_user_stacks(session, user_id=user_id)
        m81 = queue.list_user_stacks(session, user_id=user_id, object_name="M 81")
    assert [stack.job_id for stack in every] == [second, first]
    assert [stack.job_id for stack in m81] == [second]
    with test_db.session_factory() as session, session.begin():
        session.execute(update(StackedFrame).values(rejected_frames="[not json"))
    with test_db.session_factory() as session:
        damaged = queue.list_user_stacks(session, user_id=user_id)
    assert all(stack.rejected_frames == () for stack in damaged)
