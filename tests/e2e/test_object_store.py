"""Stateless API servers on one PostgreSQL and one SeaweedFS: requests may land anywhere.

Three ``crowdsky server`` processes share a database and an S3 raw store (a real
SeaweedFS cluster: master, two replicated volume servers, filer, S3 gateway). An
upload session starts on server A, its files go to B, A and C in turn, it is
finalized on A; a real worker process claims through B and fetches its raws from
the store through ``download_raw``'s redirect; a client written the way the original
v1 worker is (``requests``, which follows redirects on GET) claims through A and
downloads the other job's raws byte for byte; C, set to proxy instead of redirect,
serves one of them itself. Nothing about a request depends on
which process served the previous one.
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


def _file_ids(database_url: str, job_id: int) -> list[tuple[int, str]]:
    """(raw file id, client file name) of a job's frames."""
    from sqlalchemy import select

    from crowdsky.db import make_session_factory
    from crowdsky.db.models import RawFile

    engine = create_db_engine(database_url)
    try:
        with make_session_factory(engine)() as session, session.begin():
            rows = session.execute(
                select(RawFile.id, RawFile.filename)
                .where(RawFile.stacking_job_id == job_id)
                .order_by(RawFile.id)
            ).all()
            return [(int(r.id), str(r.filename)) for r in rows]
    finally:
        engine.dispose()


def _v1_style_fetch(server: LiveServer, root: Path) -> tuple[int, dict[str, str]]:
    """Claim and download the way the original worker does: ``requests``, Bearer key."""
    import requests

    headers = {"Authorization": f"Bearer {server.worker_key}"}
    job = requests.get(
        f"{server.api_url}/next_job.php", headers=headers, params={"worker_id": "v1"}, timeout=30
    )
    assert job.status_code == 200, job.text
    job_id = int(job.json()["job_id"])
    listing = requests.get(
        f"{server.api_url}/job_files.php",
        headers=headers,
        params={"job_id": job_id, "worker_id": "v1", "lease_token": job.json()["lease_token"]},
        timeout=30,
    )
    assert listing.status_code == 200, listing.text
    hashes = {}
    for entry in listing.json()["files"]:
        target = root / "v1" / entry["filename"]
        target.parent.mkdir(parents=True, exist_ok=True)
        with requests.get(
            f"{server.api_url}/download_raw.php",
            headers=headers,
            params={"file_id": entry["id"]},
            stream=True,
            timeout=60,
        ) as response:
            response.raise_for_status()
            # it came from the store, not from the API server
            assert response.history and response.history[0].status_code == 307
            assert response.url.startswith(server.env["AWS_ENDPOINT_URL"])
            with open(target, "wb") as fh:
                for chunk in response.iter_content(1024 * 1024):
                    fh.write(chunk)
        hashes[entry["filename"]] = hashlib.sha256(target.read_bytes()).hexdigest()
    return job_id, hashes


def test_three_servers_one_database_one_store(
    tmp_path: Path, cluster: Cluster, share: WebDavServer
) -> None:
    server_a, server_b, server_c = cluster.servers
    deployment = Deployment(server_a, cluster.database_url, tmp_path)
    deployment.create_user()
    first = _frames(tmp_path, seed=11, minute=0)
    second = _frames(tmp_path, seed=12, minute=30)
    job_ids = _upload_across(cluster.servers, first + second)
    assert len(job_ids) == 2
    assert len([k for k in cluster.objects() if "/." not in k]) == 2 * FRAMES_PER_JOB
    assert not any(server.data_dir.joinpath("uploads").exists() for server in cluster.servers)

    # the original worker's code path, through server A: redirect, bytes from the store
    v1_job, v1_hashes = _v1_style_fetch(server_a, tmp_path)
    uploaded = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in first + second}
    assert v1_hashes and all(uploaded[name] == digest for name, digest in v1_hashes.items())

    # server C serves the same bytes itself (no redirect)
    file_id, file_name = _file_ids(cluster.database_url, v1_job)[0]
    with httpx.Client(base_url=server_c.url, headers=server_c.worker_headers) as proxy:
        reply = proxy.get("/api/download_raw.php", params={"file_id": file_id})
    assert reply.status_code == 200 and not reply.history
    assert hashlib.sha256(reply.content).hexdigest() == uploaded[file_name]

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
    # the completed job's raws were deleted from the store by server B
    uploads = server_a.data_dir / "uploads"
    v1_keys = {f"raws/{p.relative_to(uploads)}" for p, _ in deployment.job(v1_job)["raw_paths"]}
    assert len(v1_keys) == FRAMES_PER_JOB
    assert {k for k in cluster.objects() if "/." not in k} == v1_keys
