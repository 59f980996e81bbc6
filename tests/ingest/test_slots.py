"""One slot, one stack: later uploads of a slot re-stack it, on every backend.

Driven through finalize and the queue functions a worker calls (claim, list files,
complete), on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from crowdsky import ingest, queue
from crowdsky.db.models import StackingJob
from crowdsky.db.types import utcnow
from crowdsky.ingest import slots
from tests.ingest.conftest import Intake
from tests.ingest.fits_factory import DEFAULT_START, write_sequence

WINDOW_HOURS = 24.0
CADENCE_S = 11.3


def _run(intake: Intake, first: int, count: int, ra: float, folder: str) -> list[Path]:
    """Frames ``first`` .. ``first + count - 1`` of one M 94 run (distinct pixels)."""
    return write_sequence(
        intake.raw_store.root.parent / folder,
        count,
        start=DEFAULT_START + timedelta(seconds=first * CADENCE_S),
        seed=first + 1,
        ra=ra,
    )


def _stacks(intake: Intake) -> list[queue.StackView]:
    with intake.db.session_factory() as session:
        return queue.list_user_stacks(session, user_id=intake.user_id)


def _claimable(intake: Intake) -> int | None:
    """The job a worker would get now, left unclaimed (the claim is rolled back)."""
    with intake.db.session_factory() as session, session.begin():
        job = session.execute(
            select(StackingJob.id)
            .where(StackingJob.status == "pending", StackingJob.waits_for_job_id.is_(None))
            .order_by(StackingJob.created_at, StackingJob.id)
            .limit(1)
        ).scalar_one_or_none()
        return job


@pytest.fixture
def classic(intake: Intake) -> Intake:
    """The intake with classic keys: the format where the bug was found."""
    intake.settings = replace(intake.settings, key_format="classic")
    return intake


def test_five_then_six_frames_end_as_one_stack_of_eleven(classic: Intake) -> None:
    """The report: 5 frames, stacked, then 6 more of the run whose mean RA rounds
    differently (193.0 vs 193.1) made a second job; now the second job re-stacks the
    11 frames and its stack replaces the first."""
    first = classic.finalize(classic.upload(_run(classic, 0, 5, 193.04, "a")))
    (job_a,) = first.job_ids
    classic.complete(job_a, restack_window_hours=WINDOW_HOURS)
    assert [s.n_frames_input for s in _stacks(classic)] == [5]
    later = classic.finalize(classic.upload(_run(classic, 5, 6, 193.07, "b")))
    (job_b,) = later.job_ids
    assert job_b != job_a and later.skipped == ()
    assert later.chunks[0].chunk_key == first.chunks[0].chunk_key == "20250327.05_193.0_+41.1"
    assert later.chunks[0].frame_count == 11
    assert [s.n_frames_input for s in _stacks(classic)] == [5], "the old stack until then"
    classic.complete(job_b, restack_window_hours=WINDOW_HOURS)
    (stack,) = _stacks(classic)
    assert stack.job_id == job_b and stack.n_frames_input == 11
    assert stack.chunk_key == "20250327.05_193.0_+41.1"


def test_the_same_frames_again_add_nothing(intake: Intake) -> None:
    frames = _run(intake, 0, 5, 192.72, "a")
    (job_id,) = intake.finalize(intake.upload(frames)).job_ids
    intake.complete(job_id, restack_window_hours=WINDOW_HOURS)
    again = intake.finalize(intake.upload(frames))
    assert again.job_ids == () and again.discarded_files == 5
    (skip,) = again.skipped
    assert skip.frame_count == 5 and skip.reason.startswith("already stacked (stack ")
    assert "same SHA-256" in skip.reason
    # copies among new frames: only the new ones are placed, never a frame twice
    mixed = intake.finalize(intake.upload([*frames[3:], *_run(intake, 5, 2, 192.72, "b")]))
    assert [c.frame_count for c in mixed.chunks] == [7]
    assert [s.frame_count for s in mixed.skipped] == [2]
    intake.complete(mixed.job_ids[0])
    assert [s.n_frames_input for s in _stacks(intake)] == [7]


def test_frames_join_a_job_that_has_not_started(classic: Intake) -> None:
    (job_id,) = classic.finalize(classic.upload(_run(classic, 0, 5, 193.04, "a"))).job_ids
    later = classic.finalize(classic.upload(_run(classic, 5, 2, 193.07, "b")))
    assert later.job_ids == (job_id,) and later.chunks[0].frame_count == 7
    assert later.skipped == (), "two frames are too few alone, but they join their slot"
    classic.complete(job_id)
    assert [s.n_frames_input for s in _stacks(classic)] == [7]


def test_upload_during_processing_queues_a_follow_up(intake: Intake) -> None:
    (job_a,) = intake.finalize(intake.upload(_run(intake, 0, 5, 192.72, "a"))).job_ids
    running = intake.claim(job_a)
    later = intake.finalize(intake.upload(_run(intake, 5, 6, 192.75, "b")))
    (job_b,) = later.job_ids
    assert job_b != job_a and _claimable(intake) is None, "it waits for the running job"
    with intake.db.session_factory() as session:
        assert len(queue.list_job_files(session, job_id=job_a).files) == 5, "undisturbed"
    intake.finish(running)
    assert _claimable(intake) == job_b
    assert intake.job_files_on_disk(job_b) and len(intake.job_files_on_disk(job_b)) == 11
    intake.complete(job_b)
    (stack,) = _stacks(intake)
    assert stack.job_id == job_b and stack.n_frames_input == 11


def test_a_follow_up_of_a_job_that_fails_for_good_takes_its_frames(intake: Intake) -> None:
    (job_a,) = intake.finalize(intake.upload(_run(intake, 0, 4, 192.72, "a"))).job_ids
    claimed = intake.claim(job_a)
    (job_b,) = intake.finalize(intake.upload(_run(intake, 4, 3, 192.72, "b"))).job_ids
    with intake.db.session_factory() as session:
        for attempt in range(queue.MAX_ATTEMPTS):
            if attempt:
                claimed = queue.claim_next_job(session, utcnow(), worker_id="w", lease_seconds=60)
                assert claimed is not None and claimed.job_id == job_a
            queue.fail_job(
                session,
                utcnow(),
                job_id=job_a,
                error_message="bad",
                backoff_seconds=0,
                lease_token=claimed.lease_token,
            )
    intake.complete(job_b)
    assert [s.n_frames_input for s in _stacks(intake)] == [7]


def test_after_the_raws_left_the_buffer_the_new_frames_are_stacked_alone(
    intake: Intake,
) -> None:
    """Once the re-stack window closed (here: none), the slot's earlier frames are
    gone: the new frames get a job of their own and the earlier stack stays (the
    weighted combination of two stacks is not built; see the issue note)."""
    (job_a,) = intake.finalize(intake.upload(_run(intake, 0, 5, 192.72, "a"))).job_ids
    intake.complete(job_a)
    later = intake.finalize(intake.upload(_run(intake, 5, 6, 192.72, "b")))
    (job_b,) = later.job_ids
    assert later.chunks[0].frame_count == 6
    intake.complete(job_b)
    assert sorted(s.n_frames_input for s in _stacks(intake)) == [5, 6], "nothing lost"


def test_the_restack_window_is_closed_by_cleanup(intake: Intake) -> None:
    (job_a,) = intake.finalize(intake.upload(_run(intake, 0, 5, 192.72, "a"))).job_ids
    intake.complete(job_a, restack_window_hours=WINDOW_HOURS)
    assert len(intake.job_files_on_disk(job_a)) == 5, "kept for a re-stack"
    with intake.db.session_factory() as session:
        from crowdsky.cleanup import run_cleanup

        soon = run_cleanup(
            session,
            utcnow() + timedelta(hours=1),
            raw_store=intake.raw_store,
            upload_expiry_hours=24,
            failed_raw_retention_hours=24,
            backoff_seconds=0,
            restack_window_hours=WINDOW_HOURS,
        )
        assert soon.deleted_files == 0
        late = run_cleanup(
            session,
            utcnow() + timedelta(hours=WINDOW_HOURS + 1),
            raw_store=intake.raw_store,
            upload_expiry_hours=24 * 30,
            failed_raw_retention_hours=24,
            backoff_seconds=0,
            restack_window_hours=WINDOW_HOURS,
        )
    assert late.deleted_files == 5 and intake.job_files_on_disk(job_a) == []


def test_two_sessions_of_one_slot_finalized_at_once_make_one_job(intake: Intake) -> None:
    tokens = [
        intake.upload(_run(intake, 0, 4, 192.72, "a")),
        intake.upload(_run(intake, 4, 4, 192.74, "b")),
    ]
    start = threading.Barrier(2)
    results: list[ingest.FinalizeResult] = []
    errors: list[BaseException] = []

    def finalize(token: str) -> None:
        start.wait()
        try:
            results.append(intake.finalize(token))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=finalize, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert {r.job_ids for r in results} == {results[0].job_ids} and len(results[0].job_ids) == 1
    with intake.db.session_factory() as session, session.begin():
        assert session.execute(select(StackingJob.frame_count)).scalars().all() == [8]


def test_another_pointing_or_telescope_is_another_slot(intake: Intake) -> None:
    (job_a,) = intake.finalize(intake.upload(_run(intake, 0, 3, 192.72, "a"))).job_ids
    far = intake.finalize(intake.upload(_run(intake, 3, 3, 194.0, "b")))
    other = write_sequence(intake.raw_store.root.parent / "c", 3, seed=50, telescop="S30_other")
    scope = intake.finalize(intake.upload(other))
    assert len({job_a, *far.job_ids, *scope.job_ids}) == 3


def test_angular_distance_is_small_angle_exact() -> None:
    assert slots.angular_distance_deg(193.0, 41.1, 193.0, 41.1) == 0.0
    assert slots.angular_distance_deg(359.9, 0.0, 0.1, 0.0) == pytest.approx(0.2)
    assert slots.angular_distance_deg(10.0, 89.9, 190.0, 89.9) == pytest.approx(0.2)


def test_overwrite_restacks_the_files_and_replaces_the_slots_stack(intake: Intake) -> None:
    frames = _run(intake, 0, 4, 192.72, "a")
    (job_a,) = intake.finalize(intake.upload(frames)).job_ids
    intake.complete(job_a)
    again = intake.finalize(intake.upload(frames), overwrite=True)
    (job_b,) = again.job_ids
    assert again.chunks[0].frame_count == 4 and again.skipped == ()
    assert [s.job_id for s in _stacks(intake)] == [job_a], "the old stack until then"
    intake.complete(job_b)
    (stack,) = _stacks(intake)
    assert stack.job_id == job_b and stack.n_frames_input == 4
