"""The seven-step pipeline with a fake stacker, an in-memory API and real result stores."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from crowdsky.storage.result_store import LocalResultStore
from crowdsky.worker.api_client import ApiClient
from crowdsky.worker.errors import StackingFailed
from crowdsky.worker.job_control import JobControl
from crowdsky.worker.job_processor import JobProcessor, ProcessorOptions
from crowdsky.worker.webdav import WebDavClient
from tests.support.webdav_server import WebDavServer
from tests.worker.fakes import (
    API,
    KEY,
    FakeStacker,
    FakeWorkerApi,
    fake_thumbnailer,
    no_wait_retry,
)

STACK = "/crowdsky/stacks/user_1/M42/stack_20250115.78_83.6_+22.0_{}.fits"


def make(
    tmp_path: Path,
    fake: FakeWorkerApi,
    *,
    stacker: FakeStacker | None = None,
    store: object | None = None,
    heartbeat: float | None = 5.0,
    thumbnailer: object = fake_thumbnailer,
) -> JobProcessor:
    api = ApiClient(API, KEY, "w-test", transport=fake.transport, retry=no_wait_retry(2))
    return JobProcessor(
        api,
        store or LocalResultStore(tmp_path / "results"),  # type: ignore[arg-type]
        ProcessorOptions(
            work_dir=tmp_path / "work", worker_id="w-test", heartbeat_interval=heartbeat
        ),
        stacker=stacker or FakeStacker(),
        thumbnailer=thumbnailer,  # type: ignore[arg-type]
    )


def claim(proc: JobProcessor) -> dict:  # type: ignore[type-arg]
    job = proc.api.get_next_job()
    assert job is not None
    return job  # type: ignore[return-value]


def test_happy_path_local_store(tmp_path: Path) -> None:
    fake = FakeWorkerApi()
    fake.add_job(42, n_files=5)
    stacker = FakeStacker()
    proc = make(tmp_path, fake, stacker=stacker)
    outcome = proc.process_job(claim(proc))  # type: ignore[arg-type]
    assert outcome.status == "completed", outcome.message
    done = fake.jobs[42].completed
    assert done is not None
    assert done["ucloud_path"] == STACK.format(42)
    assert done["thumbnail_path"] == STACK.format(42).replace(".fits", "_thumb.png")
    assert done["n_frames_input"] == 5
    assert done["n_frames_aligned"] == 4  # the engine's real count, not the input count
    assert done["date_obs_start"] == "2025-01-15T19:30:00Z"
    assert done["total_exptime"] == 40.0
    result = tmp_path / "results" / STACK.format(42).lstrip("/")
    assert result.is_file()
    assert done["file_size_bytes"] == result.stat().st_size
    assert result.with_name(result.stem + "_thumb.png").is_file()
    assert len(stacker.calls[0]) == 5
    assert not (tmp_path / "work" / "job_42").exists()  # work folder removed
    assert outcome.timings.download_s > 0 and outcome.timings.total_s > 0


def test_happy_path_webdav(tmp_path: Path, share: WebDavServer) -> None:
    fake = FakeWorkerApi()
    fake.add_job(43, n_files=3, object_name="NGC 188")
    dav = WebDavClient(share.legacy_url, share.token, "", retry=no_wait_retry(2))
    proc = make(tmp_path, fake, store=dav)
    outcome = proc.process_job(claim(proc))  # type: ignore[arg-type]
    assert outcome.status == "completed", outcome.message
    remote = "/crowdsky/stacks/user_1/NGC_188/stack_20250115.78_83.6_+22.0_43.fits"
    assert share.share_file(remote).is_file()
    assert share.share_file(remote.replace(".fits", "_thumb.png")).is_file()


def test_the_replaced_stacks_files_leave_the_share_after_the_completion(
    tmp_path: Path, share: WebDavServer
) -> None:
    """The server names the slot's replaced stack in its answer; the worker deletes
    those files from its WebDAV share (the server cannot reach it)."""
    fake = FakeWorkerApi()
    fake.add_job(43, n_files=3)
    fake.add_job(44, n_files=3)
    dav = WebDavClient(share.legacy_url, share.token, "", retry=no_wait_retry(2))
    proc = make(tmp_path, fake, store=dav)
    assert proc.process_job(claim(proc)).status == "completed"  # type: ignore[arg-type]
    old = [STACK.format(43), STACK.format(43).replace(".fits", "_thumb.png")]
    assert all(share.share_file(p).is_file() for p in old)
    fake.replaced_files = old
    assert proc.process_job(claim(proc)).status == "completed"  # type: ignore[arg-type]
    assert not any(share.share_file(p).exists() for p in old)
    assert share.share_file(STACK.format(44)).is_file()


def test_empty_file_list_fails_with_the_original_message(tmp_path: Path) -> None:
    fake = FakeWorkerApi()
    fake.add_job(1, n_files=0)
    proc = make(tmp_path, fake)
    outcome = proc.process_job(claim(proc))  # type: ignore[arg-type]
    assert outcome.status == "failed"
    assert fake.jobs[1].error_messages == ["No raw files found for this job."]
    assert outcome.server_status == "retry"


def test_truncated_download_fails_the_job(tmp_path: Path) -> None:
    fake = FakeWorkerApi()
    fake.add_job(2, n_files=4)
    fake.truncate_downloads = True
    proc = make(tmp_path, fake)
    outcome = proc.process_job(claim(proc))  # type: ignore[arg-type]
    assert outcome.status == "failed"
    assert fake.jobs[2].error_messages[0].startswith("download failed")
    assert fake.jobs[2].completed is None
    assert not (tmp_path / "work" / "job_2").exists()


def test_corrupt_raw_gives_a_clear_message(tmp_path: Path) -> None:
    fake = FakeWorkerApi()
    job = fake.add_job(3, n_files=3)
    bad = next(iter(job.files))
    job.files[bad] = b"GARBAGE!" * 500
    stacker = FakeStacker()
    proc = make(tmp_path, fake, stacker=stacker)
    outcome = proc.process_job(claim(proc))  # type: ignore[arg-type]
    assert outcome.status == "failed"
    message = fake.jobs[3].error_messages[0]
    assert f"Seestar_{bad}.fit is corrupt: not a FITS file" in message
    assert stacker.calls == []  # no stacking time wasted


def test_stacking_error_is_reported(tmp_path: Path) -> None:
    fake = FakeWorkerApi()
    fake.add_job(4)
    stacker = FakeStacker(error=StackingFailed("stacking failed: no usable frames: clouds"))
    proc = make(tmp_path, fake, stacker=stacker)
    outcome = proc.process_job(claim(proc))  # type: ignore[arg-type]
    assert outcome.status == "failed"
    assert fake.jobs[4].error_messages == ["stacking failed: no usable frames: clouds"]


def test_unexpected_exception_is_reported_with_its_type(tmp_path: Path) -> None:
    fake = FakeWorkerApi()
    fake.add_job(5)
    proc = make(tmp_path, fake, stacker=FakeStacker(error=ZeroDivisionError("boom")))
    outcome = proc.process_job(claim(proc))  # type: ignore[arg-type]
    assert outcome.status == "failed"
    assert fake.jobs[5].error_messages == ["stacking failed: ZeroDivisionError: boom"]


def test_thumbnail_failure_is_only_a_warning(tmp_path: Path) -> None:
    fake = FakeWorkerApi()
    fake.add_job(6)

    def broken(fits_path: Path, output_path: Path) -> Path:
        raise StackingFailed("thumbnail failed: bad shape")

    proc = make(tmp_path, fake, thumbnailer=broken)
    outcome = proc.process_job(claim(proc))  # type: ignore[arg-type]
    assert outcome.status == "completed"
    assert fake.jobs[6].completed is not None
    assert fake.jobs[6].completed["thumbnail_path"] is None


def test_upload_507_fails_and_never_completes(tmp_path: Path, share: WebDavServer) -> None:
    fake = FakeWorkerApi()
    fake.add_job(7)
    share.set_mode("507")
    dav = WebDavClient(share.legacy_url, share.token, "", retry=no_wait_retry(2))
    proc = make(tmp_path, fake, store=dav)
    for _attempt in range(3):
        outcome = proc.process_job(claim(proc))  # type: ignore[arg-type]
        assert outcome.status == "failed"
    job = fake.jobs[7]
    assert job.completed is None
    assert job.status == "failed"
    assert len(job.error_messages) == 3
    assert "HTTP 507" in job.error_messages[0] and "share is full" in job.error_messages[0]
    assert fake.paths("complete_job.php") == []


def test_share_down_fails_the_job(tmp_path: Path, share: WebDavServer) -> None:
    fake = FakeWorkerApi()
    fake.add_job(8)
    share.stop()
    dav = WebDavClient(share.legacy_url, share.token, "", retry=no_wait_retry(2))
    outcome = make(tmp_path, fake, store=dav).process_job(claim(make(tmp_path, fake)))  # type: ignore[arg-type]
    assert outcome.status in ("failed", "aborted")


def test_heartbeats_carry_progress(tmp_path: Path) -> None:
    fake = FakeWorkerApi()
    fake.add_job(9)
    proc = make(tmp_path, fake, stacker=FakeStacker(delay=1.0), heartbeat=0.2)
    outcome = proc.process_job(claim(proc))  # type: ignore[arg-type]
    assert outcome.status == "completed"
    progress = fake.jobs[9].progress
    assert len(progress) >= 3
    assert progress == sorted(progress) and 0 < progress[-1] <= 1


def test_lease_lost_aborts_without_reporting(tmp_path: Path) -> None:
    fake = FakeWorkerApi()
    fake.add_job(10)
    proc = make(tmp_path, fake, stacker=FakeStacker(delay=2.0), heartbeat=0.2)
    job = claim(proc)
    fake.heartbeat_status = 409
    outcome = proc.process_job(job)  # type: ignore[arg-type]
    assert outcome.status == "aborted"
    assert fake.paths("complete_job.php") == []
    assert fake.paths("fail_job.php") == []
    assert not (tmp_path / "work" / "job_10").exists()


def test_shutdown_cancel_hands_the_job_back_via_fail_job_on_an_old_server(tmp_path: Path) -> None:
    fake = FakeWorkerApi()
    fake.add_job(11)
    control = JobControl()
    proc = make(tmp_path, fake, stacker=FakeStacker(delay=2.0, on_call=lambda: timer.start()))
    timer = threading.Timer(0.3, control.cancel, args=("shutdown",))
    outcome = proc.process_job(claim(proc), control=control)  # type: ignore[arg-type]
    assert outcome.status == "aborted"
    assert fake.jobs[11].error_messages == [
        "worker shutting down: job handed back for another worker"
    ]
    assert fake.jobs[11].status == "retry"


def test_leftover_folder_of_a_killed_worker_is_replaced(tmp_path: Path) -> None:
    fake = FakeWorkerApi()
    fake.add_job(12)
    stale = tmp_path / "work" / "job_12" / "raws"
    stale.mkdir(parents=True)
    (stale / "old.fit").write_bytes(b"old")
    stacker = FakeStacker()
    proc = make(tmp_path, fake, stacker=stacker)
    assert proc.process_job(claim(proc)).status == "completed"  # type: ignore[arg-type]
    assert all(p.name != "old.fit" for p in stacker.calls[0])


@pytest.mark.parametrize("lease_seconds", [None, 9, 600])
def test_heartbeat_period_follows_the_lease(tmp_path: Path, lease_seconds: int | None) -> None:
    proc = make(tmp_path, FakeWorkerApi(), heartbeat=None)
    job = {"job_id": 1, "user_id": 1, "chunk_key": "k", "object_name": None, "frame_count": 1}
    if lease_seconds:
        job["lease_seconds"] = lease_seconds
    expected = {None: 30.0, 9: 3.0, 600: 60.0}[lease_seconds]
    assert proc.heartbeat_seconds(job) == expected  # type: ignore[arg-type]


def test_complete_refused_with_409_is_abandoned_not_failed(tmp_path: Path) -> None:
    fake = FakeWorkerApi()
    fake.add_job(13)

    def steal() -> None:  # the server re-assigns the job while we stack
        fake.jobs[13].lease_token = "another-worker"

    proc = make(tmp_path, fake, stacker=FakeStacker(on_call=steal))
    outcome = proc.process_job(claim(proc))  # type: ignore[arg-type]
    assert outcome.status == "aborted"
    assert fake.jobs[13].completed is None
    assert fake.paths("fail_job.php") == []
    # the upload stays: its deterministic path is the new holder's to overwrite
    assert (tmp_path / "results" / STACK.format(13).lstrip("/")).is_file()
