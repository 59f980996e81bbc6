"""``client_http.signed_in_client``: how the upload and user clients sign in."""

from __future__ import annotations

import httpx
import pytest

from crowdsky.client_http import signed_in_client
from crowdsky.upload_client import UploadClient
from crowdsky.user_client import UserClient

TIMEOUT = httpx.Timeout(5.0)


def _seen(**credentials: str | None) -> httpx.Request:
    """The request a client built with ``credentials`` sends to ``/api/x``."""
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={})

    credentials = {"api_key": None, "username": None, "password": None, **credentials}
    with signed_in_client(
        "http://example.test/",
        timeout=TIMEOUT,
        transport=httpx.MockTransport(answer),
        headers={"User-Agent": "t"},
        **credentials,  # type: ignore[arg-type]
    ) as client:
        client.get("/api/x")
    (request,) = requests
    return request


def test_an_api_key_is_a_bearer_and_wins_over_a_password() -> None:
    request = _seen(api_key="k1", username="alice", password="pw")
    assert request.headers["Authorization"] == "Bearer k1"
    assert str(request.url) == "http://example.test/api/x"
    assert request.headers["User-Agent"] == "t"


def test_a_user_name_and_password_are_http_basic_even_an_empty_password() -> None:
    assert _seen(username="alice", password="pw").headers["Authorization"].startswith("Basic ")
    assert _seen(username="alice", password="").headers["Authorization"].startswith("Basic ")


def test_without_credentials_the_client_is_anonymous() -> None:
    assert "Authorization" not in _seen(username="alice").headers


def test_both_clients_strip_the_trailing_slash_and_the_upload_client_needs_credentials() -> None:
    with UserClient("http://example.test/", api_key="k") as user:
        assert user.server_url == "http://example.test"
    upload = UploadClient("http://example.test/", username="a", password="p")
    assert upload.server_url == "http://example.test"
    upload.close()
    with pytest.raises(ValueError, match="API key"):
        UploadClient("http://example.test", username="alice", password="")
