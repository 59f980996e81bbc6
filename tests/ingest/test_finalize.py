"""Finalize (``ingest/finalize.py``): skipped chunks are reported, then their frames go.

Frames of a chunk that gets no job (too few frames, already stacked, already queued)
are deleted once the jobs are queued, and the session folder goes as soon as nothing
in it is needed; frames of queued jobs are never touched.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from crowdsky.db.models import RawFile, UploadSession
from crowdsky.db.types import utcnow
from tests.ingest.conftest import EXPIRY_HOURS, Intake
from tests.ingest.fits_factory import write_sequence


def _deleted_flags(intake: Intake, token: str) -> dict[str, bool]:
    with intake.db.session_factory() as session, session.begin():
        rows = session.execute(
            select(RawFile.filename, RawFile.is_deleted)
            .join(UploadSession, UploadSession.id == RawFile.upload_session_id)
            .where(UploadSession.session_token == token)
        ).all()
    return {row.filename: bool(row.is_deleted) for row in rows}


def test_frames_of_a_small_group_are_deleted_after_finalize(intake: Intake) -> None:
    m94, m51 = intake.night_with_a_small_group(4)
    token = intake.upload(m94 + m51)
    result = intake.finalize(token)
    (job_id,) = result.job_ids
    (skipped,) = result.skipped
    assert sorted(skipped.filenames) == ["M51_000.fit", "M51_001.fit"]
    assert "at least 3" in skipped.reason and result.discarded_files == 2
    on_disk = sorted(p.name for p in intake.session_dir(token).iterdir())
    assert on_disk == sorted(p.name for p in m94), "only the job's frames stay"
    assert _deleted_flags(intake, token) == {
        **{p.name: False for p in m94},
        **{p.name: True for p in m51},
    }
    # a repeated finalize answers as the first one did
    again = intake.finalize(token)
    assert again.repeated and again.job_ids == (job_id,)
    assert [(s.chunk_key, s.reason, sorted(s.filenames)) for s in again.skipped] == [
        (skipped.chunk_key, skipped.reason, sorted(skipped.filenames))
    ]
    # the session folder goes with the job's last frames
    outcome = intake.complete(job_id)
    assert outcome.files == 4 and outcome.dirs == 1
    assert not intake.session_dir(token).exists()


def test_session_without_jobs_leaves_nothing_behind(intake: Intake) -> None:
    token = intake.upload(write_sequence(intake.raw_store.root.parent / "few", 2))
    result = intake.finalize(token)
    assert result.job_ids == () and result.discarded_files == 2
    assert not intake.session_dir(token).exists()
    assert not any(intake.raw_store.root.iterdir()), "the emptied user folder goes too"
    assert set(_deleted_flags(intake, token).values()) == {True}
    status = intake.status(token)
    assert status.status == "complete" and len(status.files) == 2


def test_already_stacked_chunk_is_deleted_unless_overwrite(intake: Intake) -> None:
    frames = write_sequence(intake.raw_store.root.parent / "night", 3)
    (job_id,) = intake.finalize(intake.upload(frames)).job_ids
    intake.complete(job_id)
    second = intake.upload(frames)
    result = intake.finalize(second)
    assert result.job_ids == () and result.discarded_files == 3
    assert result.skipped[0].reason.startswith("already stacked (stack ")
    assert not intake.session_dir(second).exists()
    restacked = intake.finalize(intake.upload(frames), overwrite=True)
    assert len(restacked.job_ids) == 1 and restacked.skipped == ()
    assert restacked.discarded_files == 0
    assert len(intake.job_files_on_disk(restacked.job_ids[0])) == 3


def test_cleanup_deletes_what_an_interrupted_finalize_left(intake: Intake) -> None:
    """A crash after the finalize's commit, before its deletions: the skipped frames'
    rows are already marked deleted in that commit, so cleanup removes their files."""
    m94, m51 = intake.night_with_a_small_group(3)
    token = intake.upload(m94 + m51)
    (job_id,) = intake.finalize(token).job_ids
    # put the skipped frames back as an interrupted finalize would have left them
    for path in m51:
        (intake.session_dir(token) / path.name).write_bytes(path.read_bytes())
    assert _deleted_flags(intake, token) == {
        **{p.name: False for p in m94},
        **{p.name: True for p in m51},
    }
    swept = intake.cleanup(utcnow())
    assert swept.deleted_files == 2
    assert sorted(p.name for p in intake.session_dir(token).iterdir()) == [p.name for p in m94]
    assert len(intake.job_files_on_disk(job_id)) == 3, "the pending job keeps its frames"
    intake.complete(job_id)
    assert not intake.session_dir(token).exists()


def test_folder_with_an_upload_still_arriving_is_left_to_cleanup(intake: Intake) -> None:
    token = intake.upload(write_sequence(intake.raw_store.root.parent / "few", 2))
    folder = intake.raw_store.session_dir(intake.user_id, token)
    arriving = intake.raw_store.open_partial(folder, 1024)  # a request racing the finalize
    arriving.write(b"SIMPLE")
    assert intake.finalize(token).discarded_files == 2
    assert [p.name for p in intake.session_dir(token).iterdir()] == [arriving.path.name]
    assert intake.cleanup(utcnow()).removed_dirs == 1
    assert not intake.session_dir(token).exists()
    arriving.discard()


def test_more_frames_of_a_queued_chunk_join_its_job(intake: Intake) -> None:
    """The chunk key names a slot and a pointing, not the frames: frames of the same
    slot uploaded later in another session are new data, never discarded as a copy;
    they join the slot's job while it waits (one stack per slot: tests/ingest/test_slots.py)."""
    night = write_sequence(intake.raw_store.root.parent / "night", 8)
    (first_job,) = intake.finalize(intake.upload(night[:4])).job_ids
    later = intake.upload(night[4:])
    result = intake.finalize(later)
    assert result.job_ids == (first_job,) and result.skipped == ()
    assert result.discarded_files == 0 and result.chunks[0].frame_count == 8
    assert intake.finalize(later).job_ids == (first_job,), "a repeat answers the same job"
    assert len(intake.job_files_on_disk(first_job)) == 8
    # once the first chunk is stacked and its frames are gone, more frames get a job
    intake.complete(first_job)
    evening = write_sequence(intake.raw_store.root.parent / "more", 3, seed=7)
    again = intake.finalize(intake.upload(evening))
    assert len(again.job_ids) == 1 and again.discarded_files == 0


def test_copies_in_a_chunk_are_skipped_and_the_new_frames_queued(intake: Intake) -> None:
    night = write_sequence(intake.raw_store.root.parent / "night", 7)
    (first_job,) = intake.finalize(intake.upload(night[:4])).job_ids
    intake.complete(first_job)
    result = intake.finalize(intake.upload(night[2:]))  # two copies, three new frames
    assert len(result.job_ids) == 1 and result.chunks[0].frame_count == 3
    assert [s.frame_count for s in result.skipped] == [2]
    assert result.discarded_files == 2


def test_a_failed_deletion_keeps_the_session_closed_and_its_jobs(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once jobs are queued, finalize has happened: a failure while deleting skipped
    frames is left to cleanup, it must not reopen the session (a second finalize would
    queue the frames again, and expiry would delete the queued job's frames)."""
    m94, m51 = intake.night_with_a_small_group(3)
    token = intake.upload(m94 + m51)

    def broken(paths: object) -> int:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(intake.raw_store, "delete_files", broken)
    result = intake.finalize(token)
    (job_id,) = result.job_ids
    assert result.discarded_files == 0 and len(result.skipped) == 1
    monkeypatch.undo()
    assert intake.status(token).status == "complete"
    assert intake.finalize(token).job_ids == (job_id,), "a repeat answers the first finalize"
    # no expiry of it; the frames it could not delete go
    swept = intake.cleanup(utcnow() + timedelta(hours=EXPIRY_HOURS + 1))
    assert swept.deleted_files == 2 and swept.expired_sessions == 0
    assert len(intake.job_files_on_disk(job_id)) == 3
    intake.complete(job_id)  # then the folder goes with the job's frames
    assert not intake.session_dir(token).exists()
