"""Deleting an upload session or a job never takes frames from another job of its slot.

Driven through the web app's delete functions on every backend: frames of one slot
are shared across sessions (a later upload joins the queued job, or a follow-up takes
a finished job's frames), and a deletion refuses or detaches, keeping counts right.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crowdsky import queue
from crowdsky.db.models import RawFile, StackingJob, UploadSession
from crowdsky.web import queries
from tests.ingest.conftest import Intake
from tests.ingest.fits_factory import DEFAULT_START, write_sequence

WINDOW_HOURS = 24.0
CADENCE_S = 11.3


def _run(intake: Intake, first: int, count: int, folder: str) -> list[Path]:
    """Frames ``first`` .. ``first + count - 1`` of one M 94 run (one slot)."""
    return write_sequence(
        intake.raw_store.root.parent / folder,
        count,
        start=DEFAULT_START + timedelta(seconds=first * CADENCE_S),
        seed=first + 1,
        ra=192.72,
    )


def _session_id(intake: Intake, token: str) -> int:
    with intake.db.session_factory() as session, session.begin():
        return session.execute(
            select(UploadSession.id).where(UploadSession.session_token == token)
        ).scalar_one()


def _delete_session(intake: Intake, token: str) -> None:
    with intake.db.session_factory() as session:
        queries.delete_upload_session(
            session, intake.user_id, _session_id(intake, token), intake.raw_store, None
        )


def _job(intake: Intake, job_id: int) -> tuple[int, int]:
    """A job's recorded ``frame_count`` and the stored frames it holds."""
    with intake.db.session_factory() as session, session.begin():
        job = session.get(StackingJob, job_id)
        assert job is not None
        held = select(func.count()).where(
            RawFile.stacking_job_id == job_id, RawFile.is_deleted.is_(False)
        )
        return job.frame_count, session.execute(held).scalar_one()


def _stacks(intake: Intake) -> list[queue.StackView]:
    with intake.db.session_factory() as session:
        return queue.list_user_stacks(session, user_id=intake.user_id)


def _raw_rows(intake: Intake) -> int:
    with intake.db.session_factory() as session, session.begin():
        return session.execute(select(func.count()).select_from(RawFile)).scalar_one()


def test_deleting_a_session_whose_frames_joined_a_queued_job_detaches_them(
    intake: Intake,
) -> None:
    (job_a,) = intake.finalize(intake.upload(_run(intake, 0, 5, "a"))).job_ids
    later = intake.upload(_run(intake, 5, 2, "b"))
    assert intake.finalize(later).job_ids == (job_a,)
    assert _job(intake, job_a) == (7, 7)
    _delete_session(intake, later)
    assert _job(intake, job_a) == (5, 5), "the count follows the frames left"
    assert len(intake.job_files_on_disk(job_a)) == 5
    intake.complete(job_a)
    assert [s.n_frames_input for s in _stacks(intake)] == [5]


def test_a_session_whose_job_holds_another_sessions_frames_is_refused(
    intake: Intake,
) -> None:
    first = intake.upload(_run(intake, 0, 5, "a"))
    (job_a,) = intake.finalize(first).job_ids
    intake.finalize(intake.upload(_run(intake, 5, 2, "b")))
    rows = _raw_rows(intake)
    with pytest.raises(queries.Conflict, match="also holds frames of upload session"):
        _delete_session(intake, first)
    queued = "queued to be stacked with its slot"
    with intake.db.session_factory() as session, pytest.raises(queries.Conflict, match=queued):
        queries.delete_job(session, intake.user_id, job_a, intake.raw_store, None)
    assert _raw_rows(intake) == rows and _job(intake, job_a) == (7, 7), "nothing lost"


def test_deleting_the_earlier_session_of_a_restack_keeps_the_follow_up_whole(
    intake: Intake,
) -> None:
    """The bug: the follow-up holding the first session's frames stacked the rest with
    a stale count. Now those frames leave it and its count follows."""
    first = intake.upload(_run(intake, 0, 5, "a"))
    (job_a,) = intake.finalize(first).job_ids
    intake.complete(job_a, restack_window_hours=WINDOW_HOURS)
    (job_b,) = intake.finalize(intake.upload(_run(intake, 5, 6, "b"))).job_ids
    assert _job(intake, job_b) == (11, 11)
    _delete_session(intake, first)
    assert _job(intake, job_b) == (6, 6)
    assert len(intake.job_files_on_disk(job_b)) == 6
    intake.complete(job_b)
    (stack,) = _stacks(intake)
    assert stack.job_id == job_b and stack.n_frames_input == 6


def test_a_session_is_not_deleted_while_another_sessions_job_stacks_its_frames(
    intake: Intake,
) -> None:
    first = intake.upload(_run(intake, 0, 5, "a"))
    (job_a,) = intake.finalize(first).job_ids
    intake.complete(job_a, restack_window_hours=WINDOW_HOURS)
    (job_b,) = intake.finalize(intake.upload(_run(intake, 5, 6, "b"))).job_ids
    running = intake.claim(job_b)
    rows = _raw_rows(intake)
    with pytest.raises(queries.Conflict, match=f"job {job_b} of another upload session"):
        _delete_session(intake, first)
    assert _raw_rows(intake) == rows and len(intake.job_files_on_disk(job_b)) == 11
    intake.finish(running)
    assert [s.n_frames_input for s in _stacks(intake)] == [11]
