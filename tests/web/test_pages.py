"""The pages over HTTP (in-process app): headers, CSRF, cookies, log-in rules, escaping."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from crowdsky.config import load_server_settings
from crowdsky.server.app import create_app

PASSWORD = "Orion-Nebula-42"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(load_server_settings(data_dir=tmp_path))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def _token(client: TestClient, path: str = "/login") -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).text)
    assert match is not None
    return match.group(1)


def _register(client: TestClient, name: str) -> None:
    reply = client.post(
        "/register",
        data={
            "csrf_token": _token(client, "/register"),
            "username": name,
            "email": f"{name}@example.org",
            "password": PASSWORD,
            "password2": PASSWORD,
        },
        follow_redirects=False,
    )
    assert reply.status_code == 303, reply.text


def test_security_headers_and_cookie_flags(client: TestClient) -> None:
    reply = client.get("/")
    csp = reply.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert reply.headers["x-frame-options"] == "DENY"
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert client.get("/api/my_jobs.php").headers["x-frame-options"] == "DENY"


def test_forms_refuse_a_missing_or_foreign_csrf_token(client: TestClient) -> None:
    assert client.post("/login", data={"login": "x", "password": "y"}).status_code == 403
    other = TestClient(client.app, base_url="http://127.0.0.1")
    foreign = _token(other)
    reply = client.post("/login", data={"csrf_token": foreign, "login": "x", "password": "y"})
    assert reply.status_code == 403


def test_register_login_by_email_and_logout(client: TestClient) -> None:
    _register(client, "vega")
    assert client.get("/jobs").status_code == 200
    client.post("/logout", data={"csrf_token": _token(client, "/jobs")})
    assert client.get("/jobs", follow_redirects=False).status_code == 303
    bad = client.post(
        "/login", data={"csrf_token": _token(client), "login": "vega", "password": "wrong"}
    )
    assert bad.status_code == 401 and "Wrong user name" in bad.text
    good = client.post(
        "/login",
        data={
            "csrf_token": _token(client),
            "login": "vega@example.org",
            "password": PASSWORD,
            "next": "//evil.example/steal",
        },
        follow_redirects=False,
    )
    assert good.status_code == 303 and good.headers["location"] == "/stacks"


def test_weak_password_and_hostile_names_are_refused_as_text(client: TestClient) -> None:
    reply = client.post(
        "/register",
        data={
            "csrf_token": _token(client, "/register"),
            "username": "<script>x</script>",
            "email": "a@example.org",
            "password": "short",
            "password2": "short",
        },
    )
    assert reply.status_code == 400 and "too short" in reply.text
    assert "<script>x</script>" not in reply.text
    assert "&lt;script&gt;" in reply.text


def test_upload_api_takes_the_cookie_only_with_the_csrf_header(client: TestClient) -> None:
    _register(client, "deneb")
    token = _token(client, "/upload")
    assert client.post("/api/raw_upload.php?action=start").status_code == 401
    reply = client.post("/api/raw_upload.php?action=start", headers={"X-CSRF-Token": token})
    assert reply.status_code == 200 and reply.json()["session_token"]
    assert client.get("/api/my_jobs.php").status_code == 200  # reads need only the cookie
