"""Job status moves: ``queue/transitions.py`` enforces ``queue/states.py``'s ALLOWED_MOVES."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from sqlalchemy import select, update

from crowdsky import queue
from crowdsky.db.models import StackingJob
from crowdsky.queue import transitions
from crowdsky.queue.states import ALLOWED_MOVES, JobStatus
from crowdsky.storage.raw_store import RawStore
from crowdsky.testing import seed_jobs
from tests.db_backends import TestDatabase

PAIRS = [(a, b) for a, b in itertools.product(JobStatus, JobStatus) if a != b]
REFUSED = [(a, b) for a, b in PAIRS if b not in ALLOWED_MOVES[a]]
ALLOWED = [(a, b) for a, b in PAIRS if b in ALLOWED_MOVES[a]]


def _job_in(db: TestDatabase, tmp_path: Path, status: JobStatus) -> int:
    (job_id,) = seed_jobs(db.session_factory, RawStore(tmp_path / "uploads"), n_jobs=1)
    with db.session_factory() as session, session.begin():
        session.execute(update(StackingJob).where(StackingJob.id == job_id).values(status=status))
    return job_id


def _status(db: TestDatabase, job_id: int) -> str:
    with db.session_factory() as session, session.begin():
        return session.execute(
            select(StackingJob.status).where(StackingJob.id == job_id)
        ).scalar_one()


def test_terminal_statuses_have_no_moves() -> None:
    assert ALLOWED_MOVES[JobStatus.COMPLETED] == ALLOWED_MOVES[JobStatus.FAILED] == frozenset()
    assert set(ALLOWED_MOVES) == set(JobStatus)


@pytest.mark.parametrize(("current", "target"), REFUSED, ids=str)
def test_a_move_outside_the_table_raises_and_changes_nothing(
    test_db: TestDatabase, tmp_path: Path, current: JobStatus, target: JobStatus
) -> None:
    job_id = _job_in(test_db, tmp_path, current)
    with test_db.session_factory() as session, session.begin():
        job = transitions._load_job_for_update(session, job_id)
        with pytest.raises(queue.IllegalMove, match=f"{current} → {target}"):
            transitions._guarded_update(session, job, current, {"status": target})
    assert _status(test_db, job_id) == current


@pytest.mark.parametrize(("current", "target"), ALLOWED, ids=str)
def test_every_move_in_the_table_is_accepted(
    test_db: TestDatabase, tmp_path: Path, current: JobStatus, target: JobStatus
) -> None:
    job_id = _job_in(test_db, tmp_path, current)
    with test_db.session_factory() as session, session.begin():
        job = transitions._load_job_for_update(session, job_id)
        transitions._guarded_update(session, job, current, {"status": target})
    assert _status(test_db, job_id) == target


def test_a_claim_of_a_job_the_table_forbids_raises() -> None:
    with pytest.raises(queue.IllegalMove):
        transitions._require_move(1, JobStatus.COMPLETED, JobStatus.PROCESSING)
    transitions._require_move(1, JobStatus.RETRY, JobStatus.PROCESSING)
