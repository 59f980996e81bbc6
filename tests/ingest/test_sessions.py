"""Upload sessions (``ingest/sessions.py``): deduplication never costs a frame.

Content is deduplicated inside one session only. A frame that another session of the
same user also holds is stored again, because that other session may never be
finalized (client state lost, another machine) and would take the frame with it
when it expires.
"""

from __future__ import annotations

from datetime import timedelta

from crowdsky.db.types import utcnow
from tests.ingest.conftest import EXPIRY_HOURS, Intake
from tests.ingest.fits_factory import write_frame, write_sequence


def test_same_content_twice_in_one_session_is_stored_once(intake: Intake) -> None:
    frame = write_frame(intake.raw_store.root.parent / "src" / "a.fit")
    renamed = frame.with_name("renamed.fit")
    renamed.write_bytes(frame.read_bytes())
    token = intake.start()
    first = intake.send(token, frame)
    again = intake.send(token, renamed)
    assert not first.duplicate and again.duplicate
    assert again.file_id == first.file_id and "in this session" in (again.duplicate_note or "")
    assert [p.name for p in intake.session_dir(token).iterdir()] == ["a.fit"]
    assert intake.status(token).file_count == 1


def test_frame_of_an_abandoned_session_is_not_lost(intake: Intake) -> None:
    """The audit's loss scenario: the first session is never finalized and expires."""
    frames = write_sequence(intake.raw_store.root.parent / "night", 8)
    abandoned = intake.start()  # e.g. the client's state file was lost after 5 files
    for path in frames[:5]:
        intake.send(abandoned, path)
    token = intake.start()  # the same folder again, from scratch
    answers = [intake.send(token, path) for path in frames]
    assert not any(a.duplicate for a in answers), "each frame must belong to this session"
    assert len(list(intake.session_dir(token).iterdir())) == 8
    result = intake.finalize(token)
    (job_id,) = result.job_ids
    assert result.chunks[0].frame_count == 8 and result.skipped == ()
    # the abandoned session expires and cleanup removes its copies ...
    report = intake.cleanup(utcnow() + timedelta(hours=EXPIRY_HOURS + 1))
    assert report.expired_sessions == 1
    assert not intake.session_dir(abandoned).exists()
    # ... and the job still has every frame
    assert len(intake.job_files_on_disk(job_id)) == 8
    intake.complete(job_id)
    assert not intake.session_dir(token).exists()


def test_two_sessions_finalized_make_one_job(intake: Intake) -> None:
    frames = write_sequence(intake.raw_store.root.parent / "night", 4)
    first, second = intake.start(), intake.start()
    for path in frames:
        intake.send(first, path)
        intake.send(second, path)
    (job_id,) = intake.finalize(first).job_ids
    again = intake.finalize(second)
    assert again.job_ids == ()
    (skipped,) = again.skipped
    assert f"already queued as job {job_id}" in skipped.reason
    assert "upload the files again and finalize with overwrite=1" in skipped.reason
    # the second copies are gone; the queued job's frames are untouched
    assert not intake.session_dir(second).exists()
    assert len(intake.job_files_on_disk(job_id)) == 4


def test_reupload_while_a_job_waits_is_stored_and_reported(intake: Intake) -> None:
    frames = write_sequence(intake.raw_store.root.parent / "night", 3)
    (job_id,) = intake.finalize(intake.upload(frames)).job_ids
    second = intake.start()
    assert not any(intake.send(second, path).duplicate for path in frames)
    result = intake.finalize(second)
    assert result.job_ids == () and "already queued" in result.skipped[0].reason
    assert result.discarded_files == 3
    assert len(intake.job_files_on_disk(job_id)) == 3


def test_status_lists_every_received_file(intake: Intake) -> None:
    """Stacked or skipped files stay listed, so a resuming client does not resend them."""
    m94, m51 = intake.night_with_a_small_group(3)
    token = intake.upload(m94 + m51)
    (job_id,) = intake.finalize(token).job_ids
    stored = {f.filename: f.stored for f in intake.status(token).files}
    assert stored == {p.name: p in m94 for p in m94 + m51}, "the skipped pair was deleted"
    intake.complete(job_id)
    status = intake.status(token)
    assert not any(f.stored for f in status.files)
    assert status.status == "complete" and status.file_count == 5
    assert sorted(f.filename for f in status.files) == sorted(p.name for p in m94 + m51)
    assert {f.job_id for f in status.files} == {job_id, None}
    assert not intake.session_dir(token).exists(), "nothing is stored any more"
