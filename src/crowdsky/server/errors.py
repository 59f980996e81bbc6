"""Domain errors to HTTP: one table, one JSON shape ``{"error": "..."}`` (the spec's).

Handlers raise domain errors (or let validation fail); this module turns them into
4xx answers a client can act on. Anything unexpected becomes a logged 500 with a
generic message, which no client input should ever reach.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from crowdsky.queue import errors as queue_errors
from crowdsky.server.auth import NotAuthenticated
from crowdsky.storage.raw_store import UnsafePath

log = structlog.get_logger(__name__)

#: Domain error class -> HTTP status. Subclasses inherit their parent's entry.
STATUS_BY_ERROR: dict[type[Exception], int] = {
    NotAuthenticated: 401,
    queue_errors.JobNotFound: 404,
    queue_errors.RawFileNotFound: 404,
    queue_errors.WrongState: 409,
    queue_errors.HeldByOtherWorker: 409,
    queue_errors.AlreadyCompleted: 409,
    UnsafePath: 400,
}


class BadRequest(Exception):
    """The request is malformed."""


class PayloadTooLarge(Exception):
    """The request body is too large."""


STATUS_BY_ERROR[BadRequest] = 400
STATUS_BY_ERROR[PayloadTooLarge] = 413


def register_error_status(error: type[Exception], status: int) -> None:
    """Let another core package (e.g. ingest) map its errors without editing this table."""
    STATUS_BY_ERROR[error] = status


def error_response(status: int, message: str, **headers: str) -> JSONResponse:
    """The spec's error shape."""
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def _status_for(exc: Exception) -> int | None:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return None


def describe_validation(exc: RequestValidationError) -> str:
    """One readable sentence per invalid field, e.g. ``job_id (query): must be an integer``."""
    parts: list[str] = []
    for error in exc.errors():
        kind = error.get("type", "")
        loc = [str(p) for p in error.get("loc", ())]
        if kind == "json_invalid":
            parts.append("the request body is not valid JSON")
            continue
        where = loc[0] if loc else "request"
        name = ".".join(loc[1:]) or where
        message = str(error.get("msg", "is invalid"))
        if kind == "missing":
            message = "is required"
        parts.append(f"{name} ({where}): {message}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the same JSON shape."""

    async def domain_error(_request: Request, exc: Exception) -> JSONResponse:
        status = _status_for(exc)
        if status is None:
            log.exception("unhandled_error", error=str(exc))
            return error_response(500, "Internal error.")
        if status == 401:
            return error_response(401, "Unauthorized.", **{"WWW-Authenticate": "Bearer"})
        return error_response(status, str(exc) or (type(exc).__doc__ or "error").strip())

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, describe_validation(exc))

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail: Any = exc.detail
        message = detail if isinstance(detail, str) else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = "No such endpoint."
        elif exc.status_code == 405:
            message = "Method not allowed for this endpoint."
        headers = dict(exc.headers or {})
        return error_response(exc.status_code, message, **headers)

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    # Domain errors are registered class by class so that they are answered by the
    # exception middleware; only truly unexpected errors reach the generic 500 handler.
    for error_class in STATUS_BY_ERROR:
        app.add_exception_handler(error_class, domain_error)
    app.add_exception_handler(Exception, domain_error)
