"""``routes/user_api.py``: ``my_jobs`` and ``my_stacks`` at both paths, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from crowdsky import queue
from crowdsky.accounts import create_api_key
from crowdsky.db.models import UploadSession
from crowdsky.db.types import utcnow
from crowdsky.testing import DEFAULT_USER
from tests.server.conftest import Api

OBSERVED = datetime(2025, 3, 27, 1, 20, 2, tzinfo=UTC)


def _bearer(api: Api) -> dict[str, str]:
    with api.state.session_factory() as session:
        key = create_api_key(session, utcnow(), username=DEFAULT_USER, name="t").key
    return {"Authorization": f"Bearer {key}"}


def _complete(api: Api, job_id: int) -> None:
    """Claim and complete ``job_id`` through the queue, as the worker API does."""
    with api.state.session_factory() as session:
        claimed = queue.claim_next_job(session, utcnow(), worker_id="w1", lease_seconds=60)
    assert claimed is not None and claimed.job_id == job_id
    completion = queue.Completion(
        job_id=job_id,
        ucloud_path=f"/stacks/stack_{job_id}.fits",
        n_frames_input=3,
        n_frames_aligned=3,
        date_obs_start=OBSERVED,
        date_obs_end=OBSERVED,
        file_size_bytes=100,
    )
    with api.state.session_factory() as session:
        queue.complete_job(
            session, utcnow(), completion, worker_id="w1", lease_token=claimed.lease_token
        )


def test_my_jobs_lists_the_callers_jobs_at_both_paths(api: Api) -> None:
    ids = api.seed(n_jobs=2)
    headers = _bearer(api)
    reply = api.client.get("/api/my_jobs.php", headers=headers)
    assert reply.status_code == 200, reply.text
    jobs = reply.json()["jobs"]
    assert [job["job_id"] for job in jobs] == ids
    assert all(job["status"] == "pending" and job["stack"] is None for job in jobs)
    assert all(job["created_at"].endswith("Z") and job["started_at"] is None for job in jobs)
    assert api.client.get("/api/my_jobs", headers=headers).json() == reply.json()
    newest = api.client.get("/api/my_jobs.php", params={"limit": 1}, headers=headers)
    assert [job["job_id"] for job in newest.json()["jobs"]] == ids[1:]


def test_my_jobs_by_session_token(api: Api) -> None:
    ids = api.seed(n_jobs=2)
    headers = _bearer(api)
    with api.state.session_factory() as session, session.begin():
        token = session.execute(select(UploadSession.session_token)).scalar_one()
    mine = api.client.get("/api/my_jobs.php", params={"session_token": token}, headers=headers)
    assert [job["job_id"] for job in mine.json()["jobs"]] == ids
    other = api.client.get("/api/my_jobs.php", params={"session_token": "x" * 32}, headers=headers)
    assert other.status_code == 200 and other.json()["jobs"] == []


def test_my_stacks_shows_a_completed_stack_with_utc_times(api: Api) -> None:
    (job_id,) = api.seed(n_jobs=1)
    _complete(api, job_id)
    headers = _bearer(api)
    (stack,) = api.client.get("/api/my_stacks.php", headers=headers).json()
    assert stack["ucloud_path"] == f"/stacks/stack_{job_id}.fits"
    assert stack["date_obs_start"] == "2025-03-27T01:20:02Z"
    assert stack["created_at"].endswith("Z")
    assert api.client.get("/api/my_stacks", headers=headers).json() == [stack]
    none = api.client.get("/api/my_stacks.php", params={"object": "M 81"}, headers=headers)
    assert none.json() == []
    (job,) = api.client.get("/api/my_jobs.php", headers=headers).json()["jobs"]
    assert job["status"] == "completed" and job["stack"]["id"] == stack["id"]


def test_both_need_credentials(api: Api) -> None:
    for path in ("/api/my_jobs.php", "/api/my_jobs", "/api/my_stacks.php", "/api/my_stacks"):
        reply = api.client.get(path)
        assert reply.status_code == 401, path
        assert reply.json() == {"error": "Unauthorized."}
