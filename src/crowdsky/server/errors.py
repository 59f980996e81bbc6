"""Domain errors to HTTP: one table, one JSON shape ``{"error": "..."}`` (the spec's).

Handlers raise domain errors (or let validation fail); this module turns them into
4xx answers a client can act on. Anything unexpected becomes a logged 500 with a
generic message, which no client input should ever reach.

The request schemas refuse text and numbers a database cannot store, naming the
field, and the FITS header reading fits or refuses text longer than its column. As a
safety net, a database driver's refusal of a value (a ``DataError``: text too long
for its column, a number out of its range, NUL in PostgreSQL text) or text a driver
cannot encode is answered 400 with a fixed message, never the driver's text (it holds
the SQL and its parameters), and logged as a gap in the schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match

from crowdsky.accounts.throttle import retry_after_header
from crowdsky.ingest import errors as ingest_errors
from crowdsky.queue import errors as queue_errors
from crowdsky.server.auth import NotAuthenticated, TooManyAttempts
from crowdsky.server.body_limit import BodyTooLarge
from crowdsky.server.result_uploads import ResultNotStored, ResultUploadsUnavailable
from crowdsky.server.upload_stream import MalformedUpload
from crowdsky.stacks import errors as stacks_errors
from crowdsky.storage.raw_store import UnsafePath, UploadTooLarge
from crowdsky.storage.result_reader import ResultStoreUnavailable

log = structlog.get_logger(__name__)
_T = TypeVar("_T")
CANDIDATE_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


class BadRequest(Exception):
    """The request is malformed."""


class PayloadTooLarge(Exception):
    """The request body is too large."""


#: Domain error class -> HTTP status, every entry here and nowhere else, so the
#: handlers cover them all whatever was imported first. Subclasses inherit their
#: parent's entry.
STATUS_BY_ERROR: Mapping[type[Exception], int] = MappingProxyType(
    {
        BadRequest: 400,
        PayloadTooLarge: 413,
        NotAuthenticated: 401,
        TooManyAttempts: 429,
        BodyTooLarge: 413,
        MalformedUpload: 400,
        ClientDisconnect: 400,
        queue_errors.JobNotFound: 404,
        queue_errors.RawFileNotFound: 404,
        queue_errors.WrongState: 409,
        queue_errors.HeldByOtherWorker: 409,
        queue_errors.AlreadyCompleted: 409,
        ingest_errors.InvalidFits: 400,
        ingest_errors.InvalidFileName: 400,
        ingest_errors.FileTooLarge: 413,
        ingest_errors.SessionNotFound: 404,
        ingest_errors.SessionClosed: 409,
        ingest_errors.EmptySession: 409,
        ingest_errors.TooManyOpenSessions: 409,
        stacks_errors.StackNotFound: 404,
        stacks_errors.StackFileMissing: 404,
        stacks_errors.InvalidQuery: 400,
        stacks_errors.AlreadyUploaded: 409,
        ResultStoreUnavailable: 503,
        UploadTooLarge: 413,
        UnsafePath: 400,
        ResultNotStored: 400,
        ResultUploadsUnavailable: 404,
        sa_exc.DataError: 400,
        UnicodeEncodeError: 400,
    }
)

#: Errors answered with a fixed message instead of their own text.
FIXED_MESSAGE_BY_ERROR: Mapping[type[Exception], str] = MappingProxyType(
    {
        sa_exc.DataError: (
            "the request holds a value the database cannot store "
            "(text too long, a number out of range, or a NUL character)"
        ),
        UnicodeEncodeError: (
            "the request holds text that cannot be encoded (an unpaired surrogate)"
        ),
    }
)


def register_error_status(error: type[Exception], status: int) -> None:
    """Check that ``error`` is in :data:`STATUS_BY_ERROR` with ``status``.

    Modules that once added their own entries still call this; it now only
    refuses a mapping the table lacks, so no status lives outside it.
    """
    if STATUS_BY_ERROR.get(error) != status:
        raise LookupError(
            f"add {error.__module__}.{error.__qualname__}: {status} to "
            "STATUS_BY_ERROR in crowdsky/server/errors.py (the one error table)"
        )


def error_response(status: int, message: str, **headers: str) -> JSONResponse:
    """The spec's error shape."""
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def _lookup(table: Mapping[type[Exception], _T], exc: Exception) -> _T | None:
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
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
        elif kind == "value_error" and "error" in error.get("ctx", {}):
            message = str(error["ctx"]["error"])  # our own words, without "Value error, "
        parts.append(f"{name} ({where}): {message}")
    return "; ".join(parts) or "invalid request"


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the request's path answers, sorted."""
    routes = request.app.router.routes
    allowed = []
    for method in CANDIDATE_METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in routes):
            allowed.append(method)
    return allowed


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the same JSON shape."""

    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        status = _lookup(STATUS_BY_ERROR, exc)
        if status is None:
            log.exception("unhandled_error", error=str(exc))
            return error_response(500, "Internal error.")
        if status == 401:
            return error_response(401, "Unauthorized.", **{"WWW-Authenticate": "Bearer"})
        if isinstance(exc, TooManyAttempts):
            return error_response(
                429, str(exc), **{"Retry-After": retry_after_header(exc.retry_after_s)}
            )
        fixed = _lookup(FIXED_MESSAGE_BY_ERROR, exc)
        if fixed is not None:
            log.warning(
                "client_value_refused_by_driver",
                path=request.url.path,
                error=type(exc).__name__,
                detail=str(getattr(exc, "orig", exc))[:200],
                hint="a request schema lets this value through; constrain the field",
            )
            return error_response(status, fixed)
        return error_response(status, str(exc) or (type(exc).__doc__ or "error").strip())

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, describe_validation(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail: Any = exc.detail
        message = detail if isinstance(detail, str) else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = "No such endpoint."
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # the router names only the first route of the path; GET and POST of one
            # path are separate routes here, so list the methods of all of them
            allowed = _allowed_methods(request)
            if request.method == "OPTIONS":
                return Response(
                    status_code=204, headers={"Allow": ", ".join([*allowed, "OPTIONS"])}
                )
            headers["Allow"] = ", ".join(allowed)
            message = "Method not allowed for this endpoint."
        return error_response(exc.status_code, message, **headers)

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    # Domain errors are registered class by class so that they are answered by the
    # exception middleware; only truly unexpected errors reach the generic 500 handler.
    for error_class in STATUS_BY_ERROR:
        app.add_exception_handler(error_class, domain_error)
    app.add_exception_handler(Exception, domain_error)
