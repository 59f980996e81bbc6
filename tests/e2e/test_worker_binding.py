"""Per-worker tokens reach only the job they hold, against a real server process.

Two volunteers' tokens, w1 and w2: w1 claims a job, and w2 (or the shared key) can
neither list its files, download its raws, renew, fail, release nor complete it, with
or without ``worker_id`` and lease token in the request. With
``CROWDSKY_ALLOW_SHARED_WORKER_KEY=false`` the shared key is refused at the door.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crowdsky.accounts import create_worker_token
from crowdsky.db import create_db_engine, make_session_factory
from crowdsky.db.types import utcnow
from crowdsky.storage.raw_store import RawStore
from crowdsky.testing import seed_jobs
from tests.support.live_server import LiveServer, start_live_server


def _sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'crowdsky.sqlite3').resolve()}"


def _issue_tokens_and_seed(server: LiveServer, n_jobs: int) -> dict[str, str]:
    engine = create_db_engine(_sqlite_url(server.data_dir))
    try:
        factory = make_session_factory(engine)
        tokens = {}
        for name in ("w1", "w2"):
            with factory() as session:
                tokens[name] = create_worker_token(session, utcnow(), name).token
        seed_jobs(factory, RawStore(server.data_dir / "uploads"), n_jobs=n_jobs)
    finally:
        engine.dispose()
    return tokens


def _start(tmp_path: Path, **env: str) -> LiveServer:
    return start_live_server(
        tmp_path / "data",
        extra_env={"CROWDSKY_CLEANUP_INTERVAL_SECONDS": "0", **env},
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = _start(tmp_path)
    yield live
    live.stop()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _job_calls(job: dict[str, Any], file_id: str, *, named: bool) -> list[tuple[str, str, Any]]:
    """Every job-scoped call on ``job``; ``named`` adds the holder's worker_id and token."""
    ident = {"worker_id": "w1", "lease_token": job["lease_token"]} if named else {}
    job_id = job["job_id"]
    return [
        ("GET", "/api/job_files.php", {"params": {"job_id": job_id, **ident}}),
        ("GET", "/api/download_raw.php", {"params": {"file_id": file_id}}),
        ("POST", "/api/heartbeat.php", {"json": {"job_id": job_id, **ident}}),
        ("POST", "/api/fail_job.php", {"json": {"job_id": job_id, "error_message": "x", **ident}}),
        ("POST", "/api/release_job.php", {"json": {"job_id": job_id, **ident}}),
        (
            "POST",
            "/api/complete_job.php",
            {"json": {"job_id": job_id, "ucloud_path": "/forged.fits", **ident}},
        ),
    ]


def test_a_token_reaches_only_the_job_it_holds(server: LiveServer) -> None:
    tokens = _issue_tokens_and_seed(server, n_jobs=2)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        claimed = client.get(
            "/api/next_job.php", params={"worker_id": "w1"}, headers=_bearer(tokens["w1"])
        )
        assert claimed.status_code == 200, claimed.text
        job = claimed.json()
        files = client.get(
            "/api/job_files.php", params={"job_id": job["job_id"]}, headers=_bearer(tokens["w1"])
        )
        assert files.status_code == 200
        file_id = files.json()["files"][0]["id"]
        # w2 holds a job of its own, so "holds some job" is not enough either
        other = client.get("/api/next_job.php", headers=_bearer(tokens["w2"]))
        assert other.status_code == 200 and other.json()["job_id"] != job["job_id"]

        for intruder in (tokens["w2"], server.worker_key):
            for named in (False, True):
                for method, path, kwargs in _job_calls(job, file_id, named=named):
                    reply = client.request(method, path, headers=_bearer(intruder), **kwargs)
                    assert reply.status_code in (404, 409), (path, named, reply.text)
                    assert "uploads" not in reply.text  # no server paths in answers

        # the holder still has its job intact, and every call works for it
        mine = _bearer(tokens["w1"])
        raw = client.get("/api/download_raw.php", params={"file_id": file_id}, headers=mine)
        assert raw.status_code == 200 and len(raw.content) > 0
        beat = client.post("/api/heartbeat.php", json={"job_id": job["job_id"]}, headers=mine)
        assert beat.status_code == 200, beat.text
        done = client.post(
            "/api/complete_job.php",
            json={"job_id": job["job_id"], "ucloud_path": "/stacks/real.fits"},
            headers=mine,
        )
        assert done.status_code == 200, done.text
        # a completed job's raws are no longer served, even to its former holder: gone
        # (404) with this server's re-stack window of 0, "not processing" (409) while a
        # window keeps them
        gone = client.get("/api/download_raw.php", params={"file_id": file_id}, headers=mine)
        assert gone.status_code in (404, 409), gone.text
        assert "uploads" not in gone.text


def test_the_shared_key_keeps_the_spec_behaviour_for_its_own_jobs(server: LiveServer) -> None:
    tokens = _issue_tokens_and_seed(server, n_jobs=1)
    shared = server.worker_headers
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job = client.get("/api/next_job.php", headers=shared).json()
        # the v1 worker sends neither worker_id nor a lease token
        files = client.get("/api/job_files.php", params={"job_id": job["job_id"]}, headers=shared)
        assert files.status_code == 200
        file_id = files.json()["files"][0]["id"]
        assert client.get(
            "/api/download_raw.php", params={"file_id": file_id}, headers=_bearer(tokens["w1"])
        ).status_code in (404, 409)
        raw = client.get("/api/download_raw.php", params={"file_id": file_id}, headers=shared)
        assert raw.status_code == 200
        done = client.post(
            "/api/complete_job.php",
            json={"job_id": job["job_id"], "ucloud_path": "/stacks/s.fits"},
            headers=shared,
        )
        assert done.status_code == 200 and done.json() == {"ok": True, "replaced_files": []}


def test_the_shared_key_can_be_refused(tmp_path: Path) -> None:
    live = _start(tmp_path, CROWDSKY_ALLOW_SHARED_WORKER_KEY="false")
    try:
        tokens = _issue_tokens_and_seed(live, n_jobs=1)
        with httpx.Client(base_url=live.url, timeout=30) as client:
            refused = client.get("/api/next_job.php", headers=live.worker_headers)
            assert refused.status_code == 401
            assert client.get(f"/api/cleanup.php?key={live.worker_key}").status_code == 401
            claimed = client.get("/api/next_job.php", headers=_bearer(tokens["w1"]))
            assert claimed.status_code == 200
    finally:
        live.stop()
