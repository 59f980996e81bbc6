"""Stateless API servers on one PostgreSQL and one SeaweedFS: requests may land anywhere.

Three ``crowdsky server`` processes share a database and an S3 raw store (a real
SeaweedFS cluster: master, two replicated volume servers, filer, S3 gateway). An
upload session starts on server A, its files go to B, A and C in turn, it is
finalized on A. The original v1 worker (``tests/support/v1_worker.py``: ``requests``,
which follows redirects on GET) claims on A, lists on C, downloads through A (a
redirect to the store), heart-beats on B and completes on C; C, set to proxy instead
of redirect, serves one of its raws itself. A real worker process claims through B,
fetches its raws from the store, stacks and completes. Nothing about a request
depends on which process served the previous one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from crowdsky.db import create_db_engine, upgrade_database
from tests.db_backends import create_server_database, drop_server_database
from tests.e2e.conftest import PASSWORD, USERNAME, Deployment, WorkerLauncher, simulate_chunk
from tests.support.live_server import LiveServer, start_live_server
from tests.support.seaweedfs import SeaweedCluster
from tests.support.v1_worker import V1Worker, spec_metadata
from tests.support.webdav_server import WebDavServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FRAMES_PER_JOB = 4
SHAPE = (270, 480)


@dataclass
class Cluster:
    """Three API servers, their database and their object store."""

    servers: list[LiveServer]
    database_url: str
    bucket: str
    seaweed: SeaweedCluster

    def objects(self) -> list[str]:
        client: Any = self.seaweed.client()
        listed = client.list_objects_v2(Bucket=self.bucket, Prefix="raws/")
        return [o["Key"] for o in listed.get("Contents", [])]


@pytest.fixture
def cluster(tmp_path: Path, seaweedfs: SeaweedCluster, s3_bucket: str) -> Iterator[Cluster]:
    url, admin = create_server_database("postgresql")
    engine = create_db_engine(url)
    servers: list[LiveServer] = []
    try:
        upgrade_database(url, engine=engine)
        env = {
            **seaweedfs.s3_env(),
            "CROWDSKY_RAW_STORE": f"s3://{s3_bucket}/raws",
            "CROWDSKY_RETRY_BACKOFF_SECONDS": "0",
            # a completed job's raws go at once (no re-stack window): checked below
            "CROWDSKY_RESTACK_WINDOW_HOURS": "0",
        }
        key = "objectstore-e2e-worker-key-" + "x" * 20
        for name in ("a", "b", "c"):
            # server C proxies raw downloads instead of redirecting (stores workers can't reach)
            proxy = {"CROWDSKY_S3_REDIRECT_DOWNLOADS": "0"} if name == "c" else {}
            servers.append(
                start_live_server(
                    tmp_path / f"server-{name}",
                    database_url=url,
                    worker_key=key,
                    extra_env={**env, **proxy},
                )
            )
        yield Cluster(servers, url, s3_bucket, seaweedfs)
    finally:
        for server in servers:
            server.stop()
        engine.dispose()
        drop_server_database(url, admin)


def _frames(root: Path, seed: int, minute: int) -> list[Path]:
    return simulate_chunk(root, seed, minute, FRAMES_PER_JOB, SHAPE)


def _upload_across(servers: list[LiveServer], frames: list[Path]) -> list[int]:
    """Start on A, send files to B, A and C in turn, finalize on A; the job ids."""
    clients = [httpx.Client(base_url=s.url, auth=(USERNAME, PASSWORD), timeout=60) for s in servers]
    a, b, c = clients
    try:
        start = a.post("/api/raw_upload.php", params={"action": "start"})
        assert start.status_code == 200, start.text
        token = start.json()["session_token"]
        for index, path in enumerate(frames):
            target = (b, a, c)[index % 3]
            reply = target.post(
                "/api/raw_upload.php",
                params={"action": "file"},
                data={"session_token": token},
                files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        status = b.get("/api/raw_upload.php", params={"session_token": token}).json()
        assert status["file_count"] == len(frames)
        done = a.post(
            "/api/raw_upload.php", params={"action": "finalize"}, data={"session_token": token}
        )
        assert done.status_code == 200, done.text
        return [int(j) for j in done.json()["job_ids"]]
    finally:
        for client in clients:
            client.close()


def _v1_worker_across(servers: tuple[LiveServer, ...], root: Path) -> tuple[int, dict[str, str]]:
    """The original v1 worker's calls (``requests``, no lease token), each on another
    server: claim on A, list on C, download through A (a redirect to the store), heart-
    beat on B, complete on C. Returns the job and the downloaded files' SHA-256."""
    a, b, c = (V1Worker(s.api_url, s.worker_key) for s in servers)
    job = a.get_next_job()
    assert job is not None
    job_id = int(job["job_id"])
    files = c.get_job_files(job_id)["files"]
    hashes = {
        entry["filename"]: a.download_raw_file(int(entry["id"]), root / "v1" / entry["filename"])
        for entry in files
    }
    # server C, set to proxy instead of redirect, serves the same bytes itself
    with httpx.Client(base_url=servers[2].url, headers=servers[2].worker_headers) as proxy:
        reply = proxy.get("/api/download_raw.php", params={"file_id": files[0]["id"]})
    assert reply.status_code == 200 and not reply.history
    assert hashlib.sha256(reply.content).hexdigest() == hashes[files[0]["filename"]]
    # every file came from the store by redirect, not through the API server
    assert a.downloads and all(status == 307 for status, _ in a.downloads)
    assert all(url.startswith(servers[0].env["AWS_ENDPOINT_URL"]) for _, url in a.downloads)
    assert "lease_expires_at" in b.heartbeat(job_id)
    path = f"/crowdsky/stacks/user_1/unknown/stack_v1_{job_id}.fits"
    reply = c.complete_job(job_id, spec_metadata(path, len(hashes), 123_456))
    assert reply.status_code == 200 and reply.json()["ok"] is True, reply.text
    return job_id, hashes


def test_three_servers_one_database_one_store(
    tmp_path: Path, cluster: Cluster, share: WebDavServer
) -> None:
    server_a, server_b, _ = cluster.servers
    deployment = Deployment(server_a, cluster.database_url, tmp_path)
    deployment.create_user()
    first = _frames(tmp_path, seed=11, minute=0)
    second = _frames(tmp_path, seed=12, minute=30)
    job_ids = _upload_across(cluster.servers, first + second)
    assert len(job_ids) == 2
    assert len([k for k in cluster.objects() if "/." not in k]) == 2 * FRAMES_PER_JOB
    assert not any(server.data_dir.joinpath("uploads").exists() for server in cluster.servers)

    # the original v1 worker, one call per server: bytes from the store, job completed
    v1_job, v1_hashes = _v1_worker_across(cluster.servers, tmp_path)
    uploaded = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in first + second}
    assert len(v1_hashes) == FRAMES_PER_JOB
    assert all(uploaded[name] == digest for name, digest in v1_hashes.items())
    v1_row = deployment.job(v1_job)
    assert v1_row["status"] == "completed" and v1_row["stacked"]["file_size_bytes"] == 123_456

    # our worker process, through server B: claims the other job, stacks, completes
    server_b_deployment = Deployment(server_b, cluster.database_url, tmp_path)
    launcher = WorkerLauncher(server_b_deployment, share, tmp_path)
    try:
        worker = launcher.run_once("w-b", timeout=240)
        assert worker.process.returncode == 0, worker.log()[-4000:]
    finally:
        launcher.stop_all()
    stacked_job = next(j for j in job_ids if j != v1_job)
    row = deployment.job(stacked_job)
    assert row["status"] == "completed", (row["status"], row["attempt_history"], worker.log())
    assert row["stacked"] is not None and row["stacked"]["n_frames_input"] == FRAMES_PER_JOB
    assert worker.has_event("job_completed", job_id=stacked_job) or row["completed_at"]
    # both completed jobs' raws were deleted from the store (by servers C and B)
    assert not {k for k in cluster.objects() if "/." not in k}
