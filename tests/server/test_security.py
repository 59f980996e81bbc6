"""Security behaviour of the app in process: headers, Allow, login throttling, small points."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from crowdsky import queue
from crowdsky.accounts import create_user
from crowdsky.config import load_server_settings
from crowdsky.db.types import utcnow
from crowdsky.server import create_app
from crowdsky.server.security_headers import STRICT_CSP
from tests.db_backends import TestDatabase
from tests.server.conftest import Api

PASSWORD = "correct horse battery"
UPLOAD = "/api/raw_upload.php"


def test_every_answer_carries_the_security_headers(api: Api) -> None:
    answers = [
        api.client.get("/healthz"),
        api.client.get("/api/next_job.php"),  # 401
        api.client.get("/no/such/page"),  # 404
        api.client.post("/api/complete_job.php", content=b"x" * (2 * 2**20)),  # 413
    ]
    for reply in answers:
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["content-security-policy"] == STRICT_CSP
        assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
    assert [r.status_code for r in answers] == [200, 401, 404, 413]
    docs = api.client.get("/docs").headers["content-security-policy"]
    assert "script-src 'self';" in docs and "http" not in docs, "offline docs: no CDN"


def test_options_and_405_name_every_method_of_the_path(api: Api) -> None:
    options = api.client.options(UPLOAD)
    assert options.status_code == 204
    assert options.headers["allow"] == "GET, POST, OPTIONS"
    wrong = api.client.put(UPLOAD)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, POST"
    assert api.client.options("/api/complete_job.php").headers["allow"] == "POST, OPTIONS"


def test_get_raw_upload_documents_and_accepts_only_status(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    parameters = document["paths"][UPLOAD]["get"]["parameters"]
    action = next(p for p in parameters if p["name"] == "action")
    assert action["schema"].get("enum", [action["schema"].get("const")]) == ["status"]


@pytest.fixture
def users(test_db: TestDatabase, tmp_path: Path) -> Iterator[TestClient]:
    settings = load_server_settings(
        database_url=test_db.url,
        data_dir=tmp_path / "data",
        worker_api_key="k" * 64,
        cleanup_interval_seconds=0,
        login_failures_per_account=2,
        login_failures_per_address=50,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        with app.state.crowdsky.session_factory() as session:
            create_user(
                session, utcnow(), username="alice", email="a@example.org", password=PASSWORD
            )
        yield client


def _start(client: TestClient, login: str, password: str) -> httpx.Response:
    return client.post(UPLOAD, params={"action": "start"}, auth=(login, password))


def test_wrong_passwords_are_throttled_alike_for_known_and_unknown_logins(
    users: TestClient,
) -> None:
    # a verified login is remembered, so its owner is not locked out by an attack
    assert _start(users, "alice", PASSWORD).status_code == 200
    for login in ("alice", "nobody"):
        answers = [_start(users, login, "wrong password").status_code for _ in range(3)]
        assert answers == [401, 401, 429], login
        throttled = _start(users, login, "wrong password")
        assert throttled.status_code == 429
        assert 1 <= int(throttled.headers["retry-after"]) <= 300
        assert throttled.json()["error"].startswith("too many login attempts")
    assert _start(users, "alice", PASSWORD).status_code == 200  # remembered: still in


def test_username_and_email_of_one_account_share_one_budget(users: TestClient) -> None:
    assert [_start(users, "alice", "wrong password").status_code for _ in range(2)] == [401, 401]
    assert _start(users, "A@Example.org", "wrong password").status_code == 429
    assert _start(users, "a@example.org", PASSWORD).status_code == 429


def test_a_remembered_login_costs_no_hash(users: TestClient) -> None:
    assert _start(users, "alice", PASSWORD).status_code == 200
    started = time.perf_counter()
    for _ in range(20):  # a read: twenty session starts would reach the open-session limit
        reply = users.get("/api/my_jobs.php", auth=("alice", PASSWORD))
        assert reply.status_code == 200
    # argon2 alone would take about 0.3 s per request
    assert (time.perf_counter() - started) / 20 < 0.1


def test_a_multipart_body_without_its_closing_boundary_is_refused(users: TestClient) -> None:
    token = _start(users, "alice", PASSWORD).json()["session_token"]
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="session_token"\r\n\r\n' + token.encode() + b"\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a.fit"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + b"SIMPLE  = " + b" " * 2870
    )
    reply = users.post(
        UPLOAD,
        params={"action": "file"},
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=XyZ"},
        auth=("alice", PASSWORD),
    )
    assert reply.status_code == 400
    assert "closing boundary" in reply.json()["error"]


def test_completing_a_job_clears_the_error_of_an_earlier_attempt(api: Api) -> None:
    (job_id,) = api.seed()
    api.claim()
    failed = api.client.post(
        "/api/fail_job.php", json={"job_id": job_id, "error_message": "boom"}, headers=api.headers
    )
    assert failed.json()["status"] == "retry"
    api.claim()
    done = api.client.post(
        "/api/complete_job.php",
        json={"job_id": job_id, "ucloud_path": "/stacks/x.fits"},
        headers=api.headers,
    )
    assert done.status_code == 200
    with api.state.session_factory() as session:
        view = queue.get_job(session, job_id)
    assert view.status == "completed" and view.error_message is None
