"""The worker end to end: uploaded frames -> real server -> worker process -> WebDAV share."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits

from tests.e2e.conftest import Deployment, WorkerLauncher, wait_until
from tests.support.webdav_server import WebDavServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def first_date_obs(frames: list[Path]) -> str:
    return min(str(fits.getheader(p)["DATE-OBS"]) for p in frames)


def check_completed(
    deployment: Deployment, share: WebDavServer, job_id: int, frames: list[Path]
) -> dict:  # type: ignore[type-arg]
    row = deployment.job(job_id)
    assert row["status"] == "completed", row["error_message"]
    stacked = row["stacked"]
    assert stacked is not None
    expected = f"/crowdsky/stacks/user_{row['user_id']}/M_94/stack_{row['chunk_key']}_{job_id}.fits"
    assert stacked["ucloud_path"] == expected
    assert stacked["thumbnail_path"] == expected.replace(".fits", "_thumb.png")
    stack_file = share.share_file(expected)
    assert stack_file.is_file()
    assert stack_file.stat().st_size == stacked["file_size_bytes"]
    assert share.share_file(expected.replace(".fits", "_thumb.png")).read_bytes()[:4] == (
        b"\x89PNG"
    )
    # metadata: the engine's real counts and times, not the input count
    assert stacked["n_frames_input"] == len(frames)
    assert 2 <= stacked["n_frames_aligned"] <= len(frames)
    assert stacked["total_exptime"] == pytest.approx(10.0 * stacked["n_frames_aligned"])
    assert stacked["date_obs_start"].isoformat().startswith(first_date_obs(frames)[:19])
    assert stacked["ra_deg"] == pytest.approx(192.72, abs=0.05)
    assert stacked["dec_deg"] == pytest.approx(41.12, abs=0.05)
    with fits.open(stack_file) as hdul:
        assert len(hdul) >= 2  # the engine's multi-extension layout
    # the raws are gone from the server once the job completed
    wait_until(
        lambda: all(
            deleted and not path.exists() for path, deleted in deployment.job(job_id)["raw_paths"]
        ),
        30,
        "raw files to be deleted",
    )
    return row


def test_once_processes_an_uploaded_chunk(
    deployment: Deployment, share: WebDavServer, workers: WorkerLauncher
) -> None:
    job_id, frames = deployment.simulate_and_upload(8, seed=11)
    worker = workers.run_once("e2e-once")
    assert worker.process.returncode == 0, worker.log()
    row = check_completed(deployment, share, job_id, frames)
    assert row["worker_id"] == "e2e-once"
    # every request carried Nextcloud's header and the share token as user name
    seen = share.requests()
    assert {r["method"] for r in seen} >= {"MKCOL", "PUT"}
    assert all(r["x_requested_with"] == "XMLHttpRequest" for r in seen)
    assert all(r["auth_user"] == share.token for r in seen)
    # logs are structured and carry job and worker ids
    assert worker.has_event("job_completed", job_id=job_id, worker_id="e2e-once")
    assert worker.has_event("job_progress", job_id=job_id)
    assert not list((workers.root / "work-e2e-once").glob("job_*"))
    # nothing left: --once exits 1
    assert workers.run_once("e2e-once").process.returncode == 1


def test_daemon_via_cli_on_the_v2_endpoint(
    deployment: Deployment, share: WebDavServer, workers: WorkerLauncher
) -> None:
    first, _ = deployment.simulate_and_upload(5, seed=21)
    second, frames_b = deployment.simulate_and_upload(6, seed=22, minute=30)
    worker = workers.start(
        "e2e-daemon", cli=True, UCLOUD_WEBDAV_URL=share.v2_url, UCLOUD_SHARE_TOKEN=""
    )
    worker.wait_for(
        lambda: all(deployment.job(j)["status"] == "completed" for j in (first, second)),
        180,
        "both jobs to complete",
    )
    worker.terminate()
    assert worker.wait(60) == 0, worker.log()
    row = deployment.job(first)
    path = row["stacked"]["ucloud_path"]
    assert share.share_file(path, flavour="v2").is_file()
    assert deployment.job(second)["stacked"]["n_frames_input"] == len(frames_b)
    assert worker.has_event("worker_stopped")
    assert all(r["auth_user"] is None for r in share.requests())  # token in the path


def test_sigterm_mid_job_hands_the_job_back(
    deployment: Deployment, share: WebDavServer, workers: WorkerLauncher
) -> None:
    job_id, _ = deployment.simulate_and_upload(15, seed=31, shape=(1080, 1920))
    worker = workers.start("e2e-term", SHUTDOWN_TIMEOUT="0")
    worker.wait_for(lambda: worker.has_event("job_started", job_id=job_id), 60, "the job start")
    worker.terminate()
    assert worker.wait(60) == 0, worker.log()
    row = deployment.job(job_id)
    # released, not failed: straight back to the queue, no failed attempt counted
    assert row["status"] == "pending" and row["retry_count"] == 0, row
    outcome, message = row["attempt_history"][-1]
    assert outcome == "released" and "shutting down" in (message or "")
    assert row["stacked"] is None


def test_local_result_store(deployment: Deployment, workers: WorkerLauncher) -> None:
    job_id, frames = deployment.simulate_and_upload(4, seed=51)
    results = workers.root / "local-results"
    worker = workers.run_once(
        "e2e-local", UCLOUD_WEBDAV_URL="", UCLOUD_SHARE_TOKEN="", LOCAL_RESULTS_DIR=str(results)
    )
    assert worker.process.returncode == 0, worker.log()
    row = deployment.job(job_id)
    assert row["status"] == "completed"
    stack = results / row["stacked"]["ucloud_path"].lstrip("/")
    assert stack.is_file() and stack.stat().st_size == row["stacked"]["file_size_bytes"]
    assert stack.with_name(stack.stem + "_thumb.png").is_file()
    assert row["stacked"]["n_frames_input"] == len(frames)
