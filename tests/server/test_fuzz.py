"""Property-based fuzzing of every endpoint in the OpenAPI document: no input gives a 500.

schemathesis generates valid and invalid requests from ``/openapi.json``; each is sent
with valid credentials (worker key, or the user's Basic login) against an app with
queued work, so requests reach the handlers instead of stopping at authentication.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from crowdsky.accounts import create_user
from crowdsky.config import load_server_settings
from crowdsky.db.types import utcnow
from crowdsky.server import create_app
from crowdsky.testing import seed_jobs

pytestmark = pytest.mark.slow

WORKER_KEY = "f" * 64
PASSWORD = "correct horse battery"
USER_ENDPOINTS = ("/api/raw_upload", "/api/my_jobs", "/api/my_stacks")


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("fuzz")
    app = create_app(
        load_server_settings(
            data_dir=Path(data), worker_api_key=WORKER_KEY, cleanup_interval_seconds=0
        )
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        state = app.state.crowdsky
        with state.session_factory() as session:
            create_user(
                session,
                utcnow(),
                username="fuzzer",
                email="fuzz@example.invalid",
                password=PASSWORD,
            )
        seed_jobs(state.session_factory, state.raw_store, n_jobs=20, files_per_job=2)
        yield client


# The document only: building the app does no I/O (the database opens in the lifespan).
schema = schemathesis.openapi.from_dict(
    create_app(load_server_settings(data_dir=Path("unused"))).openapi()
)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_makes_the_server_fail(case, fuzz_app: TestClient) -> None:  # type: ignore[no-untyped-def]
    if case.path.startswith(USER_ENDPOINTS):
        token = base64.b64encode(f"fuzzer:{PASSWORD}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
    else:
        headers = {"Authorization": f"Bearer {WORKER_KEY}"}
    kwargs = case.as_transport_kwargs(headers=headers)
    kwargs.pop("base_url", None)
    if kwargs.pop("cookies", None):
        pytest.skip("cookie parameters are not part of our API")
    if isinstance(kwargs.get("data"), bytes | str):
        kwargs["content"] = kwargs.pop("data")  # raw bodies go as content in httpx
    url = kwargs.pop("url")
    path = url.split("://", 1)[-1].split("/", 1)[-1]
    method = kwargs.pop("method")
    try:
        request = fuzz_app.build_request(method, "/" + path, **kwargs)
        request.read()
    except (TypeError, AttributeError, ValueError):
        pytest.skip("not a request an HTTP client can encode")
    response = fuzz_app.send(request)
    assert response.status_code < 500, (
        f"{case.method} {case.path} -> {response.status_code}: {response.text[:500]}"
    )
    if response.status_code >= 400:
        assert "error" in response.json(), response.text[:500]
