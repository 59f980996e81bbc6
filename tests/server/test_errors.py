"""The error table of ``server/errors.py``: driver refusals of client values are 400s."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc

from crowdsky.server.errors import install_error_handlers

SQL = "INSERT INTO stacked_frames (ucloud_path) VALUES (%(ucloud_path)s)"
SECRET_VALUE = "/stacks/secret\x00.fits"


def _client(error: Exception) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise error

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "error",
    [
        sa_exc.DataError(
            SQL,
            {"ucloud_path": SECRET_VALUE},
            ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
        ),
        sa_exc.DataError(SQL, {"total_exptime": 1e39}, ValueError("(1264, 'Out of range')")),
        UnicodeEncodeError("utf-8", "a\ud800", 1, 2, "surrogates not allowed"),
    ],
)
def test_a_value_the_driver_refuses_is_a_400_that_hides_the_sql(error: Exception) -> None:
    response = _client(error).get("/boom")
    assert response.status_code == 400
    message = response.json()["error"]
    assert message.startswith("the request holds")
    assert "INSERT" not in message and "secret" not in message


def test_anything_else_is_still_a_generic_500() -> None:
    response = _client(sa_exc.OperationalError(SQL, {}, ValueError("server gone"))).get("/boom")
    assert response.status_code == 500
    assert response.json() == {"error": "Internal error."}
