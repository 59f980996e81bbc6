"""Workers without store credentials, on a real SeaweedFS: raws by redirect, results by PUT.

- The original v1 worker's HTTP (``tests/support/v1_worker.py``: ``requests``, no lease
  token) against a server whose raw store answers ``download_raw`` with a 307 to a
  presigned URL: it gets every byte from the store, heart-beats and completes.
- A real worker process with ``RESULT_STORE=presigned`` and no AWS variables at all
  stacks a job and publishes it through the URLs that ``result_upload_urls`` signs;
  the server checks the objects (HEAD) before it accepts the completion, refuses a
  completion whose stack is not there (the job stays held), and refuses to sign for a
  job that another worker token holds (409).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crowdsky.accounts import create_worker_token
from crowdsky.db import create_db_engine, make_session_factory
from crowdsky.db.types import utcnow
from tests.e2e.conftest import Deployment, simulate_chunk, start_deployment
from tests.support.seaweedfs import SeaweedCluster
from tests.support.v1_worker import V1Worker, spec_metadata

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FRAMES_PER_JOB = 4


@pytest.fixture
def start_server(
    tmp_path: Path, seaweedfs: SeaweedCluster, s3_bucket: str
) -> Iterator[Callable[[bool], Deployment]]:
    """Starts a SQLite server whose raws are in the bucket (and, asked, its results)."""
    started: list[Deployment] = []

    def start(results: bool) -> Deployment:
        env = {
            **seaweedfs.s3_env(),
            "CROWDSKY_RAW_STORE": f"s3://{s3_bucket}/raws",
            "CROWDSKY_CLEANUP_INTERVAL_SECONDS": "0",
        }
        if results:
            env["CROWDSKY_RESULT_STORE"] = f"s3://{s3_bucket}/results"
        started.append(start_deployment(tmp_path, env))
        return started[-1]

    yield start
    for deployment in started:
        deployment.server.stop()


def test_the_v1_worker_follows_the_redirect_and_completes(
    tmp_path: Path, start_server: Callable[[bool], Deployment]
) -> None:
    raw_store_server = start_server(False)
    server = raw_store_server.server
    frames = simulate_chunk(tmp_path, seed=21, minute=0)
    (job_id,) = raw_store_server.upload(frames)
    uploaded = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in frames}

    worker = V1Worker(server.api_url, server.worker_key)
    job = worker.get_next_job()
    assert job is not None and int(job["job_id"]) == job_id
    listing = worker.get_job_files(job_id)
    for entry in listing["files"]:
        digest = worker.download_raw_file(int(entry["id"]), tmp_path / "v1" / entry["filename"])
        assert digest == uploaded[entry["filename"]]
    assert len(worker.downloads) == FRAMES_PER_JOB
    # every file came from the store by redirect, not through the API server
    assert all(status == 307 for status, _ in worker.downloads)
    assert all(url.startswith(server.env["AWS_ENDPOINT_URL"]) for _, url in worker.downloads)
    assert "lease_expires_at" in worker.heartbeat(job_id)

    path = f"/crowdsky/stacks/user_1/unknown/stack_x_{job_id}.fits"
    reply = worker.complete_job(job_id, spec_metadata(path, FRAMES_PER_JOB, 123_456))
    assert reply.status_code == 200 and reply.json()["ok"] is True, reply.text
    row = raw_store_server.job(job_id)
    assert row["status"] == "completed"
    assert row["stacked"]["ucloud_path"] == path
    assert row["stacked"]["file_size_bytes"] == 123_456


def _tokens(database_url: str, *names: str) -> list[str]:
    engine = create_db_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            return [create_worker_token(session, utcnow(), name).token for name in names]
    finally:
        engine.dispose()


def _run_presigned_worker(deployment: Deployment, token: str, root: Path) -> tuple[int, str]:
    """``python -m crowdsky.worker --once`` with RESULT_STORE=presigned and no AWS_* at all."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "API_BASE_URL", "WORKER_", "UCLOUD_", "RESULT_STORE"))
    }
    env.update(
        {
            "API_BASE_URL": deployment.server.api_url,
            "WORKER_API_KEY": token,
            "WORKER_ID": "presigned-worker",
            "RESULT_STORE": "presigned",
            "WORK_DIR": str(root / "work"),
            "POLL_INTERVAL": "0.5",
            "PYTHONUNBUFFERED": "1",
            "HOME": str(root / "home"),  # no ~/.aws either
        }
    )
    log = root / "presigned-worker.log"
    with open(log, "wb") as out:
        process = subprocess.run(
            [sys.executable, "-m", "crowdsky.worker", "--once", "--json-logs"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            timeout=300,
            check=False,
        )
    return process.returncode, log.read_text(errors="replace")


def test_a_worker_without_store_credentials_publishes_by_presigned_put(
    tmp_path: Path,
    start_server: Callable[[bool], Deployment],
    seaweedfs: SeaweedCluster,
    s3_bucket: str,
) -> None:
    deployment = start_server(True)
    server = deployment.server
    held_elsewhere, own = sorted(
        deployment.upload(
            simulate_chunk(tmp_path, seed=31, minute=0) + simulate_chunk(tmp_path, 32, 30)
        )
    )
    other_token, worker_token = _tokens(deployment.database_url, "volunteer-a", "volunteer-b")

    # volunteer A holds the first job; B may not have URLs for it
    other = V1Worker(server.api_url, other_token, worker_id="volunteer-a")
    assert int(other.get_next_job()["job_id"]) == held_elsewhere  # type: ignore[index]
    with httpx.Client(base_url=server.api_url, timeout=30) as api:
        refused = api.post(
            "/result_upload_urls.php",
            json={"job_id": held_elsewhere},
            headers={"Authorization": f"Bearer {worker_token}"},
        )
        assert refused.status_code == 409, refused.text
        signed = api.post(
            "/result_upload_urls.php",
            json={"job_id": held_elsewhere},
            headers={"Authorization": f"Bearer {other_token}"},
        )
        assert signed.status_code == 200, signed.text
    files = {f["kind"]: f for f in signed.json()["files"]}
    assert set(files) == {"fits", "thumbnail", "stars"}
    assert files["fits"]["path"].endswith(f"_{held_elsewhere}.fits")
    # A reports completion without uploading: refused, and the job stays A's
    unsent = other.complete_job(
        held_elsewhere, spec_metadata(files["fits"]["path"], FRAMES_PER_JOB, 1000)
    )
    assert unsent.status_code == 400 and "upload it first" in unsent.json()["error"]
    assert deployment.job(held_elsewhere)["status"] == "processing"

    # B, a real worker process without any S3 credentials, stacks and publishes its job
    code, log = _run_presigned_worker(deployment, worker_token, tmp_path)
    assert code == 0, log[-4000:]
    row = deployment.job(own)
    assert row["status"] == "completed", (row["attempt_history"], log[-4000:])
    stacked = row["stacked"]
    client: Any = seaweedfs.client()
    key = "results" + stacked["ucloud_path"]
    head = client.head_object(Bucket=s3_bucket, Key=key)
    assert head["ContentLength"] == stacked["file_size_bytes"] > 0
    assert client.head_object(Bucket=s3_bucket, Key="results" + stacked["thumbnail_path"])
    assert "AWS_" not in log  # nothing about credentials was needed or logged
