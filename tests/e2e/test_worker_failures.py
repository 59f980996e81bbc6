"""The worker end to end when things go wrong: a full or absent share, a corrupt raw,
a worker killed mid-job, a server that goes away for a while."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Deployment, WorkerLauncher, start_deployment, wait_until
from tests.support.live_server import start_live_server
from tests.support.webdav_server import WebDavServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def fails_after_three_attempts(
    deployment: Deployment,
    share: WebDavServer,
    workers: WorkerLauncher,
    job_id: int,
    worker_id: str,
    message_parts: tuple[str, ...],
) -> None:
    """Three ``--once`` runs: retry, retry, failed, each with the message; nothing published."""
    for attempt in range(1, 4):
        worker = workers.run_once(worker_id)
        assert worker.process.returncode == 0, worker.log()  # a job was processed
        row = deployment.job(job_id)
        assert row["status"] == ("failed" if attempt == 3 else "retry"), row
        for part in message_parts:
            assert part in row["error_message"], row["error_message"]
        assert row["stacked"] is None  # never reported complete
    assert workers.run_once(worker_id).process.returncode == 1  # terminally failed
    assert not any(r["method"] == "PUT" and r["status"] == 201 for r in share.requests())
    # the raws stay on the server for inspection; nothing was deleted
    assert all(
        path.exists() and not deleted for path, deleted in deployment.job(job_id)["raw_paths"]
    )


def test_share_answering_507_fails_the_job_after_three_attempts(
    deployment: Deployment, share: WebDavServer, workers: WorkerLauncher
) -> None:
    job_id, _ = deployment.simulate_and_upload(3, seed=41)
    share.set_mode("507")
    fails_after_three_attempts(
        deployment, share, workers, job_id, "e2e-full", ("HTTP 507", "share is full")
    )


def test_share_down_for_good_fails_the_job_after_three_attempts(
    deployment: Deployment, share: WebDavServer, workers: WorkerLauncher
) -> None:
    job_id, _ = deployment.simulate_and_upload(3, seed=47)
    share.stop()  # connection refused on every attempt of every run
    fails_after_three_attempts(
        deployment,
        share,
        workers,
        job_id,
        "e2e-gone",
        ("WebDAV share unavailable after", "connection failed"),
    )


def test_share_down_then_back(
    deployment: Deployment, share: WebDavServer, workers: WorkerLauncher
) -> None:
    job_id, _ = deployment.simulate_and_upload(3, seed=42)
    share.stop()
    worker = workers.run_once("e2e-down")
    assert worker.process.returncode == 0, worker.log()
    row = deployment.job(job_id)
    assert row["status"] == "retry"
    assert "unavailable" in row["error_message"] and "connection" in row["error_message"]
    share.start()
    assert workers.run_once("e2e-down").process.returncode == 0
    row = deployment.job(job_id)
    assert row["status"] == "completed"
    assert share.share_file(row["stacked"]["ucloud_path"]).is_file()


def test_corrupt_raw_gives_a_clear_failure(
    deployment: Deployment, share: WebDavServer, workers: WorkerLauncher
) -> None:
    job_id, _ = deployment.simulate_and_upload(4, seed=43)
    path, _ = deployment.job(job_id)["raw_paths"][1]
    size = path.stat().st_size
    path.write_bytes(b"\x00garbage" * (size // 8) + b"\x00" * (size % 8))  # same size
    worker = workers.run_once("e2e-corrupt")
    assert worker.process.returncode == 0, worker.log()
    row = deployment.job(job_id)
    assert row["status"] == "retry"
    assert f"raw file {path.name} is corrupt: not a FITS file" in row["error_message"]
    assert row["stacked"] is None


def test_worker_killed_mid_job_is_finished_by_another(tmp_path: Path, share: WebDavServer) -> None:
    deployment = start_deployment(
        tmp_path / "kill",
        {"CROWDSKY_JOB_LEASE_SECONDS": "6", "CROWDSKY_CLEANUP_INTERVAL_SECONDS": "1"},
    )
    launcher = WorkerLauncher(deployment, share, tmp_path / "kill")
    try:
        job_id, frames = deployment.simulate_and_upload(15, seed=44, shape=(1080, 1920))
        doomed = launcher.start("e2e-doomed")
        doomed.wait_for(lambda: doomed.has_event("job_started", job_id=job_id), 60, "job start")
        doomed.kill()  # SIGKILL: no hand-back, no cleanup
        row = deployment.job(job_id)
        assert row["status"] == "processing" and row["worker_id"] == "e2e-doomed"
        rescuer = launcher.start("e2e-rescuer")
        rescuer.wait_for(lambda: deployment.job(job_id)["status"] == "completed", 120, "the rescue")
        rescuer.terminate()
        assert rescuer.wait(60) == 0
        row = deployment.job(job_id)
        assert row["stacked"]["worker_id"] == "e2e-rescuer"
        assert row["stacked"]["n_frames_input"] == len(frames)
        assert share.share_file(row["stacked"]["ucloud_path"]).is_file()
    finally:
        launcher.stop_all()
        deployment.server.stop()


def test_daemon_waits_for_an_unreachable_server_and_resumes(
    deployment: Deployment, share: WebDavServer, workers: WorkerLauncher
) -> None:
    worker = workers.start("e2e-patient")
    worker.wait_for(lambda: worker.has_event("worker_started"), 30, "the worker to start")
    old = deployment.server
    port = int(old.url.rsplit(":", 1)[1])
    old.stop()
    worker.wait_for(
        lambda: sum(e.get("event") == "poll_failed" for e in worker.events()) >= 2,
        60,
        "failed polls",
    )
    assert worker.process.poll() is None  # still alive
    deployment.server = start_live_server(
        old.data_dir,
        worker_key=old.worker_key,
        port=port,
        extra_env={"CROWDSKY_RETRY_BACKOFF_SECONDS": "0"},
    )
    job_id, _ = deployment.simulate_and_upload(3, seed=45)
    worker.wait_for(lambda: deployment.job(job_id)["status"] == "completed", 120, "the job")
    assert worker.has_event("server_reachable_again")
    worker.terminate()
    assert worker.wait(60) == 0


def test_wait_until_helper_reports_timeouts() -> None:
    with pytest.raises(AssertionError, match="timed out"):
        wait_until(lambda: False, 0.2, "nothing")


LEASE_S = 2  # a 30-frame job takes several times longer, even on a fast idle machine


def test_heartbeats_keep_a_job_longer_than_its_lease(tmp_path: Path, share: WebDavServer) -> None:
    deployment = start_deployment(
        tmp_path / "lease",
        {"CROWDSKY_JOB_LEASE_SECONDS": str(LEASE_S), "CROWDSKY_CLEANUP_INTERVAL_SECONDS": "1"},
    )
    launcher = WorkerLauncher(deployment, share, tmp_path / "lease")
    try:
        job_id, frames = deployment.simulate_and_upload(30, seed=46, shape=(1080, 1920))
        worker = launcher.run_once("e2e-long", timeout=300)
        assert worker.process.returncode == 0, worker.log()
        done = next(e for e in worker.events() if e.get("event") == "job_completed")
        # longer than the lease: only the heartbeats kept it
        assert done["total_s"] > LEASE_S, f"job took {done['total_s']} s, lease {LEASE_S} s"
        row = deployment.job(job_id)
        assert row["status"] == "completed"
        assert row["attempts"] == 1  # never reaped and re-queued
        assert row["heartbeat_at"] is not None
        assert row["stacked"]["n_frames_input"] == len(frames)
    finally:
        launcher.stop_all()
        deployment.server.stop()
