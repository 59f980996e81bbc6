"""The error table of ``server/errors.py``: one literal table; driver refusals are 400s."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc

from crowdsky import ingest, stacks
from crowdsky.server.errors import (
    STATUS_BY_ERROR,
    install_error_handlers,
    register_error_status,
)
from crowdsky.server.upload_stream import MalformedUpload
from crowdsky.storage.raw_store import UploadTooLarge

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


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ingest.InvalidFits("a.fit", "no header"), 400),
        (ingest.SessionNotFound("tok"), 404),
        (ingest.TooManyOpenSessions("too many"), 409),
        (stacks.AlreadyUploaded("again"), 409),
        (UploadTooLarge("big"), 413),
        (MalformedUpload("no file"), 400),
    ],
)
def test_the_table_is_whole_without_importing_any_route(error: Exception, status: int) -> None:
    # A bare app, no router imported: every domain error still gets its status.
    assert _client(error).get("/boom").status_code == status


def test_the_table_is_read_only_and_the_register_call_only_checks() -> None:
    with pytest.raises(TypeError):
        STATUS_BY_ERROR[KeyError] = 400  # type: ignore[index]
    register_error_status(ingest.InvalidFits, 400)
    with pytest.raises(LookupError, match="STATUS_BY_ERROR"):
        register_error_status(KeyError, 400)
    with pytest.raises(LookupError):
        register_error_status(ingest.InvalidFits, 409)
