"""A finished stack survives a server outage during ``complete_job`` (real processes).

The server is killed as soon as the worker has downloaded its raws, so the stack is
made and published while the server is away and the report meets a dead port. The
worker keeps retrying (for as long as the lease allows) and delivers it when the
server is back; a worker stopped during the outage keeps the report in
``WORK_DIR/completions`` and delivers it at its next start. Either way the job is
completed by its first attempt: no stack is made twice.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Deployment, WorkerLauncher, WorkerProcess, start_deployment
from tests.support.live_server import start_live_server
from tests.support.webdav_server import WebDavServer

pytestmark = [pytest.mark.e2e]


def _kill_after_downloads(deployment: Deployment, worker: WorkerProcess, job_id: int) -> int:
    worker.wait_for(lambda: worker.has_event("downloads_done", job_id=job_id), 180, "downloads")
    port = int(deployment.server.url.rsplit(":", 1)[1])
    deployment.server.kill()
    return port


def _restart(deployment: Deployment, port: int) -> None:
    old = deployment.server
    deployment.server = start_live_server(
        old.data_dir,
        worker_key=old.worker_key,
        port=port,
        extra_env={"CROWDSKY_RETRY_BACKOFF_SECONDS": "0", "CROWDSKY_CLEANUP_INTERVAL_SECONDS": "0"},
    )


def _assert_completed_once(deployment: Deployment, job_id: int) -> None:
    row = deployment.job(job_id)
    assert row["status"] == "completed", row
    assert row["attempts"] == 1, row["attempt_history"]
    assert row["stacked"] is not None


def _outage_during_completion(tmp_path: Path, share: WebDavServer, outage_s: float) -> None:
    deployment = start_deployment(tmp_path / "outage")
    launcher = WorkerLauncher(deployment, share, tmp_path / "outage")
    try:
        job_id, _ = deployment.simulate_and_upload(8, seed=71)
        worker = launcher.start("e2e-steadfast")
        port = _kill_after_downloads(deployment, worker, job_id)
        worker.wait_for(
            lambda: worker.has_event("completion_not_delivered", job_id=job_id),
            120,
            "a failed complete_job",
        )
        time.sleep(outage_s)
        assert worker.process.poll() is None
        _restart(deployment, port)
        worker.wait_for(lambda: worker.has_event("job_completed", job_id=job_id), 120, "delivery")
        _assert_completed_once(deployment, job_id)
        assert not list((tmp_path / "outage" / "work-e2e-steadfast" / "completions").iterdir())
    finally:
        launcher.stop_all()
        deployment.server.stop()


def test_complete_job_outlasts_a_short_server_outage(tmp_path: Path, share: WebDavServer) -> None:
    _outage_during_completion(tmp_path, share, outage_s=8.0)


@pytest.mark.slow
def test_complete_job_outlasts_a_30_s_server_outage(tmp_path: Path, share: WebDavServer) -> None:
    _outage_during_completion(tmp_path, share, outage_s=30.0)


def test_a_completion_kept_on_disk_is_delivered_at_next_start(
    tmp_path: Path, share: WebDavServer
) -> None:
    deployment = start_deployment(tmp_path / "kept")
    launcher = WorkerLauncher(deployment, share, tmp_path / "kept")
    try:
        job_id, _ = deployment.simulate_and_upload(8, seed=72)
        worker = launcher.start("e2e-kept", SHUTDOWN_TIMEOUT="1")
        port = _kill_after_downloads(deployment, worker, job_id)
        worker.wait_for(
            lambda: worker.has_event("completion_not_delivered", job_id=job_id),
            120,
            "a failed complete_job",
        )
        worker.terminate()
        assert worker.wait(60) == 0
        assert worker.has_event("completion_kept", job_id=job_id)
        saved = tmp_path / "kept" / "work-e2e-kept" / "completions" / f"job_{job_id}.json"
        assert saved.is_file()
        _restart(deployment, port)
        again = launcher.start("e2e-kept")
        again.wait_for(lambda: deployment.job(job_id)["status"] == "completed", 60, "delivery")
        _assert_completed_once(deployment, job_id)
        assert not saved.exists()
    finally:
        launcher.stop_all()
        deployment.server.stop()
