"""Contract of the worker API (worker-api-reference.md) on every database backend."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crowdsky import queue
from crowdsky.accounts import create_worker_token, revoke_worker_token
from crowdsky.db.models import StackingJob
from crowdsky.db.types import utcnow
from tests.server.conftest import Api

ENDPOINTS = [
    "next_job",
    "job_files",
    "download_raw",
    "complete_job",
    "fail_job",
    "heartbeat",
    "release_job",
    "cleanup",
]
POST_ENDPOINTS = ("complete_job", "fail_job", "heartbeat", "release_job")


def _complete_body(job_id: object, **extra: object) -> dict[str, Any]:
    body: dict[str, Any] = {
        "job_id": job_id,
        "ucloud_path": f"/crowdsky/stacks/user_1/M_94/stack_x_{job_id}.fits",
        "thumbnail_path": f"/crowdsky/stacks/user_1/M_94/stack_x_{job_id}_thumb.png",
        "n_frames_input": 3,
        "n_frames_aligned": 3,
        "total_exptime": 30.0,
        "date_obs_start": "2025-03-27T01:20:02",
        "date_obs_end": "2025-03-27T01:20:35.5",
        "ra_deg": 192.72,
        "dec_deg": 41.12,
        "file_size_bytes": 12582912,
        "n_stars_detected": 247,
    }
    body.update(extra)
    return body


def test_next_job_claims_with_the_spec_shape_then_204(api: Api) -> None:
    (job_id,) = api.seed()
    job = api.claim("worker-01")
    assert {k: job[k] for k in ("job_id", "frame_count", "object_name")} == {
        "job_id": job_id,
        "frame_count": 3,
        "object_name": "M 94",
    }
    for key in ("user_id", "upload_session_id", "chunk_key", "session_ucloud_path"):
        assert key in job
    assert not str(job["session_ucloud_path"]).startswith("/")  # no server paths leak
    assert job["attempt"] == 1 and len(str(job["lease_token"])) == 32
    empty = api.client.get("/api/next_job.php", headers=api.headers)
    assert empty.status_code == 204 and empty.content == b""


def test_default_worker_id_is_default(api: Api) -> None:
    api.seed()
    job = api.client.get("/api/next_job.php", headers=api.headers).json()
    complete = api.client.post(
        "/api/complete_job.php",
        json=_complete_body(job["job_id"], worker_id="default"),
        headers=api.headers,
    )
    assert complete.json() == {"ok": True, "replaced_files": []}


def test_job_files_has_string_values_like_the_original(api: Api) -> None:
    api.seed(files_per_job=2)
    job = api.claim()
    response = api.client.get(
        "/api/job_files.php", params={"job_id": job["job_id"]}, headers=api.headers
    )
    assert response.status_code == 200
    body = response.json()
    assert body["job_id"] == job["job_id"] and body["chunk_key"] == job["chunk_key"]
    first = body["files"][0]
    for key in ("id", "file_size_bytes", "fits_exptime", "fits_ra", "fits_dec", "fits_date_obs"):
        assert isinstance(first[key], str), key
    assert first["fits_exptime"] == "10" and first["fits_ra"] == "192.72"
    assert len(first["fits_date_obs"]) == len("2025-01-15 19:30:00")
    assert len(body["files"]) == 2


def test_download_raw_streams_the_file(api: Api) -> None:
    api.seed(files_per_job=1)
    job = api.claim()
    files = api.client.get(
        "/api/job_files.php", params={"job_id": job["job_id"]}, headers=api.headers
    ).json()["files"]
    response = api.client.get(
        "/api/download_raw.php", params={"file_id": files[0]["id"]}, headers=api.headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert int(response.headers["content-length"]) == int(files[0]["file_size_bytes"])
    assert response.content.startswith(b"SIMPLE")


def test_complete_job_keeps_raws_unserved_and_is_idempotent(api: Api) -> None:
    api.seed(files_per_job=2)
    job = api.claim()
    files = api.client.get(
        "/api/job_files.php", params={"job_id": job["job_id"]}, headers=api.headers
    ).json()["files"]
    body = _complete_body(job["job_id"], worker_id="w1", lease_token=job["lease_token"])
    first = api.client.post("/api/complete_job.php", json=body, headers=api.headers)
    assert first.status_code == 200 and first.json() == {"ok": True, "replaced_files": []}
    repeat = api.client.post("/api/complete_job.php", json=body, headers=api.headers)
    assert repeat.status_code == 200 and repeat.json() == {"ok": True, "replaced_files": []}
    for change in ({"n_stars_detected": 1}, {"date_obs_end": "2025-03-27T01:30:00"}):
        different = api.client.post(
            "/api/complete_job.php", json={**body, **change}, headers=api.headers
        )
        assert different.status_code == 409, change
    for entry in files:  # kept for a re-stack of the slot (the window), never served
        kept = api.client.get(
            "/api/download_raw.php", params={"file_id": entry["id"]}, headers=api.headers
        )
        assert kept.status_code == 409 and "not processing" in kept.text


def test_repeated_complete_job_with_precise_floats_is_ok(api: Api) -> None:
    """Values beyond single precision survive the round trip, so a retry is not a 409."""
    api.seed()
    job = api.claim()
    body = _complete_body(
        job["job_id"],
        worker_id="w1",
        lease_token=job["lease_token"],
        ra_deg=192.7213458123,
        dec_deg=41.1203456789,
        total_exptime=150.000001,
    )
    first = api.client.post("/api/complete_job.php", json=body, headers=api.headers)
    assert first.status_code == 200 and first.json() == {"ok": True, "replaced_files": []}
    repeat = api.client.post("/api/complete_job.php", json=body, headers=api.headers)
    assert repeat.status_code == 200 and repeat.json() == {"ok": True, "replaced_files": []}, (
        repeat.text
    )
    different = api.client.post(
        "/api/complete_job.php", json={**body, "ra_deg": 193.5}, headers=api.headers
    )
    assert different.status_code == 409


def test_complete_job_by_another_worker_is_refused(api: Api) -> None:
    api.seed()
    job = api.claim("w1")
    response = api.client.post(
        "/api/complete_job.php",
        json=_complete_body(job["job_id"], worker_id="w2"),
        headers=api.headers,
    )
    assert response.status_code == 409
    assert "held by worker 'w1'" in response.json()["error"]


def test_fail_job_retries_then_fails(api: Api) -> None:
    (job_id,) = api.seed()
    statuses = []
    for _ in range(3):
        job = api.claim()
        assert job["job_id"] == job_id
        response = api.client.post(
            "/api/fail_job.php",
            json={"job_id": job_id, "error_message": "Alignment failed"},
            headers=api.headers,
        )
        assert response.status_code == 200
        statuses.append(response.json())
    assert statuses == [
        {"ok": True, "status": "retry"},
        {"ok": True, "status": "retry"},
        {"ok": True, "status": "failed"},
    ]
    assert api.client.get("/api/next_job.php", headers=api.headers).status_code == 204


def test_heartbeat_extends_and_refuses_strangers(api: Api) -> None:
    api.seed()
    job = api.claim("w1")
    ok = api.client.post(
        "/api/heartbeat.php",
        json={
            "job_id": job["job_id"],
            "worker_id": "w1",
            "lease_token": job["lease_token"],
            "progress": 0.25,
            "message": "downloading",
        },
        headers=api.headers,
    )
    assert ok.status_code == 200 and ok.json()["ok"] is True
    assert ok.json()["lease_expires_at"] >= str(job["lease_expires_at"])
    stranger = api.client.post(
        "/api/heartbeat.php",
        json={"job_id": job["job_id"], "worker_id": "w2"},
        headers=api.headers,
    )
    assert stranger.status_code == 409
    missing = api.client.post("/api/heartbeat", json={"job_id": 424242}, headers=api.headers)
    assert missing.status_code == 404


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e != "cleanup"])
def test_every_worker_endpoint_requires_the_key(api: Api, endpoint: str) -> None:
    method = "POST" if endpoint in POST_ENDPOINTS else "GET"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        response = api.client.request(method, f"/api/{endpoint}.php", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": "Unauthorized."}
    # keys in the query string are for cleanup only
    response = api.client.request(method, f"/api/{endpoint}.php?key={'k' * 64}")
    assert response.status_code == 401


def test_per_worker_tokens_work_until_revoked(api: Api) -> None:
    with api.state.session_factory() as session:
        issued = create_worker_token(session, utcnow(), "zeus-01")
    api.seed()
    headers = {"Authorization": f"Bearer {issued.token}"}
    job = api.client.get("/api/next_job.php", headers=headers)
    assert job.status_code == 200
    # without an explicit worker_id the token's name is recorded
    refused = api.client.post(
        "/api/complete_job.php",
        json=_complete_body(job.json()["job_id"], worker_id="other"),
        headers=headers,
    )
    assert refused.status_code == 409 and "zeus-01" in refused.json()["error"]
    with api.state.session_factory() as session:
        revoke_worker_token(session, utcnow(), "zeus-01")
    assert api.client.get("/api/next_job.php", headers=headers).status_code == 401


def test_cleanup_accepts_bearer_or_query_key_and_answers_text(api: Api) -> None:
    by_query = api.client.get(f"/api/cleanup.php?key={'k' * 64}")
    assert by_query.status_code == 200
    assert by_query.headers["content-type"].startswith("text/plain")
    assert by_query.text.startswith("Cleanup done: 0 expired sessions, 0 files deleted")
    assert api.client.get("/api/cleanup.php", headers=api.headers).status_code == 200
    assert api.client.get("/api/cleanup.php?key=wrong").status_code == 401
    assert api.client.get("/api/cleanup.php").status_code == 401


def test_clean_aliases_serve_the_same_endpoints(api: Api) -> None:
    api.seed()
    job = api.client.get("/api/next_job", headers=api.headers)
    assert job.status_code == 200
    files = api.client.get(
        "/api/job_files", params={"job_id": job.json()["job_id"]}, headers=api.headers
    )
    assert files.status_code == 200


BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", "/api/job_files.php", {}, 400),
    ("GET", "/api/job_files.php?job_id=", {}, 400),
    ("GET", "/api/job_files.php?job_id=abc", {}, 400),
    ("GET", "/api/job_files.php?job_id=-3", {}, 400),
    ("GET", "/api/job_files.php?job_id=0", {}, 400),
    ("GET", "/api/job_files.php?job_id=99999999999999999999", {}, 400),
    ("GET", "/api/job_files.php?job_id=1.5", {}, 400),
    ("GET", "/api/job_files.php?job_id=1&lease_token=%C3%A9", {}, 400),
    ("GET", "/api/job_files.php?job_id=1&lease_token=" + "a" * 65, {}, 400),
    ("GET", "/api/job_files.php?job_id=424242", {}, 404),
    ("GET", "/api/download_raw.php", {}, 400),
    ("GET", "/api/download_raw.php?file_id=1e3", {}, 400),
    ("GET", "/api/download_raw.php?file_id=424242", {}, 404),
    ("GET", "/api/next_job.php?worker_id=" + "x" * 65, {}, 400),
    ("GET", "/api/next_job.php?worker_id=%00bad", {}, 400),
    ("POST", "/api/complete_job.php", {"content": b"{not json"}, 400),
    ("POST", "/api/complete_job.php", {"json": []}, 400),
    ("POST", "/api/complete_job.php", {"json": {}}, 400),
    ("POST", "/api/complete_job.php", {"json": {"job_id": "abc", "ucloud_path": "/x"}}, 400),
    ("POST", "/api/complete_job.php", {"json": {"job_id": 424242, "ucloud_path": "/x"}}, 404),
    ("POST", "/api/complete_job.php", {"json": {"job_id": 1}}, 400),
    ("POST", "/api/complete_job.php", {"json": _complete_body(1, ra_deg=400)}, 400),
    ("POST", "/api/complete_job.php", {"json": _complete_body(1, n_frames_aligned=9)}, 400),
    ("POST", "/api/complete_job.php", {"json": _complete_body(1, date_obs_start="soon")}, 400),
    ("POST", "/api/complete_job.php", {"json": _complete_body(1, total_exptime="NaN")}, 400),
    ("POST", "/api/complete_job.php", {"json": _complete_body(1, total_exptime=1e39)}, 400),
    ("POST", "/api/complete_job.php", {"json": _complete_body(1, ucloud_path="y" * 513)}, 400),
    ("POST", "/api/complete_job.php", {"json": _complete_body(1, n_stars_detected=2**70)}, 400),
    ("POST", "/api/complete_job.php", {"json": _complete_body(1, file_size_bytes=1.5)}, 400),
    ("POST", "/api/complete_job.php", {"data": {"job_id": "1", "ucloud_path": "/x"}}, 400),
    ("POST", "/api/complete_job.php", {"content": b"x" * 2_000_000}, 413),
    ("POST", "/api/fail_job.php", {"json": {"error_message": "no id"}}, 400),
    ("POST", "/api/fail_job.php", {"json": {"job_id": 424242}}, 404),
    ("POST", "/api/fail_job.php", {"json": {"job_id": [1]}}, 400),
    ("POST", "/api/fail_job.php", {"json": {"job_id": 1, "error_message": ["x"]}}, 400),
    ("POST", "/api/heartbeat.php", {"json": {"job_id": 1, "progress": 7}}, 400),
    ("POST", "/api/heartbeat.php", {"json": {"job_id": 1, "message": "m" * 256}}, 400),
    ("POST", "/api/release_job.php", {"json": {"job_id": 2**70}}, 400),
    ("POST", "/api/release_job.php", {"json": {"job_id": 1, "reason": "r" * 4001}}, 400),
    ("PUT", "/api/complete_job.php", {}, 405),
    ("DELETE", "/api/next_job.php", {}, 405),
    ("GET", "/api/complete_job.php", {}, 405),
    ("POST", "/api/next_job.php", {}, 405),
    ("GET", "/api/no_such_endpoint.php", {}, 404),
]


@pytest.mark.parametrize(("method", "url", "kwargs", "status"), BAD_REQUESTS)
def test_bad_input_gets_a_clear_4xx_and_changes_nothing(
    api: Api, method: str, url: str, kwargs: dict[str, Any], status: int
) -> None:
    api.seed()
    response = api.client.request(method, url, headers=api.headers, **kwargs)
    assert response.status_code == status, response.text
    assert isinstance(response.json()["error"], str) and response.json()["error"]
    # the queued job is untouched
    assert api.claim()["attempt"] == 1


# (endpoint, values sent with the id of a job claimed by "w1", the field the error names):
# the audit's 500s; each must reach the job's holder check, so the job is claimed.
HOSTILE_FOR_A_CLAIMED_JOB: list[tuple[str, dict[str, Any], str]] = [
    ("complete_job", {"lease_token": "é" * 32}, "lease_token"),
    ("fail_job", {"lease_token": "☃"}, "lease_token"),
    ("heartbeat", {"lease_token": "🚀"}, "lease_token"),
    ("release_job", {"lease_token": "é"}, "lease_token"),
    ("job_files", {"lease_token": "é"}, "lease_token"),
    ("complete_job", {"ucloud_path": "/stacks/a\x00.fits"}, "ucloud_path"),
    ("complete_job", {"thumbnail_path": "/stacks/a\x00.png"}, "thumbnail_path"),
    ("complete_job", {"date_obs_end": "9999-12-31T23:59:59-12:00"}, "date_obs_end"),
    ("complete_job", {"total_exptime": 1e39}, "total_exptime"),
    ("fail_job", {"error_message": "Alignment failed\x00"}, "error_message"),
    ("fail_job", {"error_message": "\ud800"}, "error_message"),
    ("fail_job", {"worker_id": "w1\x00"}, "worker_id"),
    ("heartbeat", {"message": "stacking\x00"}, "message"),
    ("release_job", {"reason": "shutting down\x00"}, "reason"),
    ("job_files", {"worker_id": "w1\x00"}, "worker_id"),
]


@pytest.mark.parametrize(("endpoint", "values", "field"), HOSTILE_FOR_A_CLAIMED_JOB)
def test_hostile_text_for_a_claimed_job_gets_a_400_naming_the_field(
    api: Api, endpoint: str, values: dict[str, Any], field: str
) -> None:
    api.seed()
    job = api.claim("w1")
    job_id = job["job_id"]
    if endpoint == "job_files":
        response = api.client.get(
            "/api/job_files.php", params={"job_id": job_id, **values}, headers=api.headers
        )
    else:
        body = _complete_body(job_id) if endpoint == "complete_job" else {"job_id": job_id}
        body.update(values)
        response = api.client.post(  # json.dumps escapes a lone surrogate as a client would
            f"/api/{endpoint}.php",
            content=json.dumps(body),
            headers={**api.headers, "Content-Type": "application/json"},
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"{field} ("), response.text
    # nothing changed: the job is still held, with its lease, and no attempt was recorded
    with api.state.session_factory() as session:
        view = queue.get_job(session, int(str(job_id)))
    assert (view.status, view.attempts, view.errors, view.progress_message) == (
        queue.JobStatus.PROCESSING,
        1,
        (),
        None,
    )
    renewed = api.client.post(
        "/api/heartbeat.php",
        json={"job_id": job_id, "worker_id": "w1", "lease_token": job["lease_token"]},
        headers=api.headers,
    )
    assert renewed.status_code == 200, renewed.text


def test_wrong_state_answers_409(api: Api) -> None:
    (job_id,) = api.seed()
    for path, body in (
        ("/api/complete_job.php", _complete_body(job_id)),
        ("/api/fail_job.php", {"job_id": job_id}),
        ("/api/heartbeat.php", {"job_id": job_id}),
    ):
        response = api.client.post(path, json=body, headers=api.headers)
        assert response.status_code == 409, path
        assert "pending, not processing" in response.json()["error"]
    listing = api.client.get("/api/job_files.php", params={"job_id": job_id}, headers=api.headers)
    assert listing.status_code == 409


def test_openapi_describes_every_endpoint(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    for name in ENDPOINTS:
        assert f"/api/{name}.php" in paths and f"/api/{name}" in paths
    assert "204" in paths["/api/next_job.php"]["get"]["responses"]


def test_health(api: Api) -> None:
    assert api.client.get("/healthz").json()["ok"] is True


def test_release_job_returns_the_job_to_the_queue(api: Api) -> None:
    api.seed()
    job = api.claim("w1")
    body = {
        "job_id": job["job_id"],
        "worker_id": "w1",
        "lease_token": job["lease_token"],
        "reason": "worker shutting down",
    }
    response = api.client.post("/api/release_job.php", json=body, headers=api.headers)
    assert response.status_code == 200 and response.json() == {"ok": True, "status": "pending"}
    assert (
        api.client.post("/api/release_job.php", json=body, headers=api.headers).status_code == 409
    )
    assert api.claim("w2")["attempt"] == 2


def test_rejected_frames_reported_at_completion_reach_the_job_listing(api: Api) -> None:
    from crowdsky.accounts import create_api_key
    from crowdsky.db.types import utcnow
    from crowdsky.testing import DEFAULT_USER

    api.seed(files_per_job=3)
    job = api.claim()
    rejected = [
        {"filename": "Light_002.fit", "reason": "registration failed: 4 stars matched (need 6)"},
        {"filename": "Light_003.fit", "reason": "trailed: elongation 3.1"},
    ]
    body = _complete_body(job["job_id"], worker_id="w1", lease_token=job["lease_token"])
    done = api.client.post(
        "/api/complete_job.php", json={**body, "rejected_frames": rejected}, headers=api.headers
    )
    assert done.status_code == 200, done.text
    with api.state.session_factory() as session:
        key = create_api_key(session, utcnow(), username=DEFAULT_USER, name="t").key
    listing = api.client.get("/api/my_jobs.php", headers={"Authorization": f"Bearer {key}"})
    (item,) = listing.json()["jobs"]
    assert item["stack"]["rejected_frames"] == rejected
    too_long = {**body, "rejected_frames": [{"filename": "x.fit", "reason": "r" * 501}]}
    refused = api.client.post("/api/complete_job.php", json=too_long, headers=api.headers)
    assert refused.status_code in (400, 409), refused.text


def test_result_upload_urls_need_an_s3_result_store_and_the_holder(api: Api) -> None:
    """Without CROWDSKY_RESULT_STORE the server signs nothing (404) and checks nothing;
    the holder checks come first (signing against SeaweedFS: tests/e2e)."""
    api.seed()
    job = api.claim("w1")
    ask = {"job_id": job["job_id"], "worker_id": "w1"}
    reply = api.client.post("/api/result_upload_urls.php", json=ask, headers=api.headers)
    assert reply.status_code == 404 and "CROWDSKY_RESULT_STORE" in reply.json()["error"]
    stranger = {**ask, "worker_id": "w2"}
    reply = api.client.post("/api/result_upload_urls.php", json=stranger, headers=api.headers)
    assert reply.status_code == 409
    missing = api.client.post(
        "/api/result_upload_urls.php", json={"job_id": 999_999}, headers=api.headers
    )
    assert missing.status_code == 404


def test_complete_job_names_the_replaced_stacks_files_and_deletes_local_ones(api: Api) -> None:
    """A re-stack of the slot replaces the earlier stack: its row goes in the completing
    transaction, its local files after it, and the answer names them for the worker's
    remote store (never the files just recorded)."""
    first, second = api.seed(n_jobs=2, files_per_job=1)
    with api.state.session_factory() as session, session.begin():
        follow_up = session.get(StackingJob, second)
        assert follow_up is not None
        follow_up.replaces_job_id = first
    results = api.state.settings.resolved_results_dir
    answers = []
    for job_id in (first, second):
        job = api.claim()
        assert job["job_id"] == job_id
        body = _complete_body(job_id, worker_id="w1", lease_token=job["lease_token"])
        for path in (body["ucloud_path"], body["thumbnail_path"]):
            (results / str(path).lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (results / str(path).lstrip("/")).write_bytes(b"x")
        answers.append(api.client.post("/api/complete_job.php", json=body, headers=api.headers))
    old = _complete_body(first)
    assert answers[0].json()["replaced_files"] == []
    assert answers[1].json()["replaced_files"] == [old["ucloud_path"], old["thumbnail_path"]]
    assert not (results / str(old["ucloud_path"]).lstrip("/")).exists()
    assert (results / str(_complete_body(second)["ucloud_path"]).lstrip("/")).is_file()
