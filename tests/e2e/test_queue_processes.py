"""The queue through a real server process: concurrent claims, and recovery from a dead worker."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from crowdsky.db import create_db_engine, make_session_factory, upgrade_database
from crowdsky.db.models import JobAttempt, StackedFrame, StackingJob
from crowdsky.storage.raw_store import RawStore
from crowdsky.testing import seed_jobs
from tests.db_backends import create_server_database, drop_server_database
from tests.support.live_server import LiveServer, start_live_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

N_JOBS = 500
N_CLIENTS = 16


@pytest.fixture(params=["postgresql", "mariadb"])
def server_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh migrated database on a server backend."""
    url, admin = create_server_database(request.param)
    try:
        upgrade_database(url)
        yield url
    finally:
        drop_server_database(url, admin)


def _seed(url: str, data_dir: Path, n_jobs: int) -> list[int]:
    engine = create_db_engine(url)
    try:
        return seed_jobs(
            make_session_factory(engine),
            RawStore(data_dir / "uploads"),
            n_jobs=n_jobs,
            files_per_job=1,
        )
    finally:
        engine.dispose()


def _job_rows(url: str) -> tuple[dict[str, int], int, int]:
    engine = create_db_engine(url)
    try:
        with make_session_factory(engine)() as session, session.begin():
            statuses = dict(
                session.execute(
                    select(StackingJob.status, func.count()).group_by(StackingJob.status)
                ).all()
            )
            frames = session.execute(select(func.count()).select_from(StackedFrame)).scalar_one()
            attempts = session.execute(select(func.count()).select_from(JobAttempt)).scalar_one()
            return statuses, frames, attempts
    finally:
        engine.dispose()


def _work_until_empty(server: LiveServer, name: str, done: list[int], lock: threading.Lock) -> None:
    with server.client() as client:
        while True:
            response = client.get("/api/next_job.php", params={"worker_id": name})
            if response.status_code == 204:
                return
            response.raise_for_status()
            job = response.json()
            completed = client.post(
                "/api/complete_job.php",
                json={
                    "job_id": job["job_id"],
                    "ucloud_path": f"/stacks/stack_{job['job_id']}.fits",
                    "n_frames_input": job["frame_count"],
                    "n_frames_aligned": job["frame_count"],
                    "worker_id": name,
                    "lease_token": job["lease_token"],
                },
            )
            assert completed.status_code == 200, completed.text
            with lock:
                done.append(int(job["job_id"]))


def test_concurrent_clients_claim_and_complete_every_job_exactly_once(
    server_database: str, tmp_path: Path
) -> None:
    job_ids = _seed(server_database, tmp_path, N_JOBS)
    server = start_live_server(tmp_path, database_url=server_database)
    done: list[int] = []
    lock = threading.Lock()
    try:
        threads = [
            threading.Thread(target=_work_until_empty, args=(server, f"client-{i}", done, lock))
            for i in range(N_CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert not any(thread.is_alive() for thread in threads)
    finally:
        server.stop()
    duplicates = [job for job, count in Counter(done).items() if count > 1]
    assert duplicates == [], f"claimed twice: {duplicates[:10]}"
    assert sorted(done) == sorted(job_ids), "jobs lost"
    statuses, frames, attempts = _job_rows(server_database)
    assert statuses == {"completed": N_JOBS}
    assert frames == N_JOBS and attempts == N_JOBS
    assert not list((tmp_path / "uploads").rglob("*.fit")), "raw files left behind"


CRASHING_CLIENT = """
import json, sys, time, httpx
url, key = sys.argv[1], sys.argv[2]
job = httpx.get(url + "/api/next_job.php", params={"worker_id": "doomed"},
                headers={"Authorization": "Bearer " + key}, timeout=30).json()
print(json.dumps(job), flush=True)
time.sleep(600)  # 'working' until killed
"""


def test_a_killed_client_loses_its_lease_and_another_client_finishes_the_job(
    tmp_path: Path,
) -> None:
    lease_s = 5
    server = start_live_server(
        tmp_path,
        extra_env={
            "CROWDSKY_JOB_LEASE_SECONDS": str(lease_s),
            "CROWDSKY_RETRY_BACKOFF_SECONDS": "0",
        },
    )
    try:
        # seed through the server's own SQLite file (migrated on start)
        (job_id,) = _seed(f"sqlite:///{tmp_path / 'crowdsky.sqlite3'}", tmp_path, 1)
        doomed = subprocess.Popen(
            [sys.executable, "-c", CRASHING_CLIENT, server.url, server.worker_key],
            stdout=subprocess.PIPE,
        )
        assert doomed.stdout is not None
        claimed = json.loads(doomed.stdout.readline())
        assert claimed["job_id"] == job_id
        doomed.kill()
        doomed.wait(timeout=10)

        with server.client() as client:
            assert client.get("/api/next_job.php").status_code == 204  # lease still valid
            deadline = time.monotonic() + lease_s + 20
            rescued = None
            while time.monotonic() < deadline:
                response = client.get("/api/next_job.php", params={"worker_id": "rescuer"})
                if response.status_code == 200:
                    rescued = response.json()
                    break
                time.sleep(0.5)
            assert rescued is not None, "the job never came back after its lease expired"
            assert rescued["job_id"] == job_id and rescued["attempt"] == 2
            late = client.post(
                "/api/complete_job.php",
                json={"job_id": job_id, "ucloud_path": "/x.fits", "worker_id": "doomed"},
            )
            assert late.status_code == 409
            done = client.post(
                "/api/complete_job.php",
                json={
                    "job_id": job_id,
                    "ucloud_path": "/x.fits",
                    "worker_id": "rescuer",
                    "lease_token": rescued["lease_token"],
                },
            )
            assert done.status_code == 200
    finally:
        server.stop()
    statuses, frames, attempts = _job_rows(f"sqlite:///{tmp_path / 'crowdsky.sqlite3'}")
    assert statuses == {"completed": 1} and frames == 1 and attempts == 2


def test_server_refuses_to_start_on_an_unreachable_database(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="server exited"):
        start_live_server(tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")


def test_health_endpoint_over_http(tmp_path: Path) -> None:
    server = start_live_server(tmp_path)
    try:
        assert httpx.get(f"{server.url}/healthz").json()["ok"] is True
    finally:
        server.stop()
