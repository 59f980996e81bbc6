"""The raw upload API: ``/api/raw_upload.php?action=start|file|finalize|status``.

Compatible with the later original server's programmatic upload (``original-system.md``
§7): same path, ``action`` query parameter, multipart ``file`` with a form field
``session_token``, the same reply fields. Each path is also served without ``.php``.
Authentication is HTTP Basic (username or email + password) or ``Bearer csk_...``.

``action=file`` is the one asynchronous handler: it streams the multipart body into
the session folder (:mod:`crowdsky.server.upload_stream`), so memory does not grow
with the file; everything that touches the database runs in the thread pool.
Every refusal is a 4xx ``{"error": "<file name>: <problem>"}`` and leaves no file
behind; the session stays usable for the next file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Message

from crowdsky import ingest
from crowdsky.accounts import UserInfo
from crowdsky.config import ServerSettings
from crowdsky.db.types import utcnow
from crowdsky.server.deps import State
from crowdsky.server.errors import BadRequest, PayloadTooLarge
from crowdsky.server.routes import php_paths
from crowdsky.server.schemas import fields
from crowdsky.server.schemas.upload_api import (
    Action,
    ChunkDetail,
    ErrorResponse,
    FinalizeResponse,
    SkippedChunk,
    StartResponse,
    StatusFile,
    StatusResponse,
    UploadedFileResponse,
)
from crowdsky.server.state import ServerState
from crowdsky.server.upload_stream import receive_upload
from crowdsky.server.user_auth import AuthenticatedUser
from crowdsky.storage.raw_store import PartialUpload, UploadTooLarge

router = APIRouter(tags=["upload API"])

#: Bodies of start/finalize/status are a few form fields.
SMALL_FORM_BYTES = 64 * 1024
#: After refusing a file mid-stream, read at most this much more before closing.
DRAIN_EXTRA_BYTES = 1024 * 1024
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
FALSE_VALUES = frozenset({"", "0", "false", "no", "off"})

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Bad file or malformed request"},
    401: {"model": ErrorResponse, "description": "Missing or wrong credentials"},
    404: {"model": ErrorResponse, "description": "No such upload session for this user"},
    409: {
        "model": ErrorResponse,
        "description": "Session finalized, expired or empty, or too many open sessions",
    },
    413: {"model": ErrorResponse, "description": "File larger than the per-file limit"},
}
TOKEN_FIELD = {
    "type": "string",
    "minLength": 1,
    "maxLength": fields.MAX_TOKEN_CHARS,
    "pattern": fields.TOKEN_PATTERN,
}
FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "FITS raw frame (action=file)",
                        },
                        "session_token": TOKEN_FIELD,
                        "overwrite": {"type": "string", "enum": ["0", "1"]},
                        "scrub_location": {"type": "string", "enum": ["0", "1"]},
                    },
                }
            },
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "session_token": TOKEN_FIELD,
                        "overwrite": {"type": "string", "enum": ["0", "1"]},
                        "scrub_location": {"type": "string", "enum": ["0", "1"]},
                    },
                }
            },
        },
    }
}
AnyReply = StartResponse | UploadedFileResponse | FinalizeResponse | StatusResponse
TokenQuery = Annotated[
    fields.Token | None,
    Query(description="Session token (may also be sent as a form field)"),
]


def _route(method: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
    """Register a handler at ``/api/raw_upload.php`` and the alias ``/api/raw_upload``."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        php_paths.add_php_route(router, "raw_upload", func, methods=[method], **kwargs)
        return func

    return decorator


@_route(
    "POST",
    response_model=AnyReply,
    responses=ERRORS,
    openapi_extra=FORM_BODY,
    summary="Start a session, upload one file, or finalize",
)
async def raw_upload(
    request: Request,
    state: State,
    user: AuthenticatedUser,
    action: Annotated[Action, Query(description="start | file | finalize | status")],
    session_token: TokenQuery = None,
) -> Any:
    """``start`` → session token; ``file`` → one frame; ``finalize`` → jobs; ``status``."""
    if action == "file":
        return await _receive_file(request, state, user, session_token)
    form = await _small_form(request)
    if action == "start":
        return await run_in_threadpool(_start, state, user)
    token = _session_token(session_token, form)
    if not token:
        raise BadRequest("session_token is required (form field or query parameter)")
    if action == "finalize":
        overwrite = _flag(form.get("overwrite"), "overwrite")
        scrub = _flag(form.get("scrub_location"), "scrub_location")
        return await run_in_threadpool(_finalize, state, user, token, overwrite, scrub)
    return await run_in_threadpool(_status, state, user, token)


@_route(
    "GET",
    response_model=StatusResponse,
    responses=ERRORS,
    summary="List a session's files with their hashes and chunk keys",
)
def raw_upload_status(
    state: State,
    user: AuthenticatedUser,
    session_token: Annotated[fields.Token, Query()],
    action: Annotated[
        Literal["status"], Query(description="only status (the others need POST)")
    ] = "status",
) -> Any:
    """The session's status and files (``action`` may only be ``status``)."""
    return _status(state, user, session_token)


# -- actions ------------------------------------------------------------------------------


def _intake(settings: ServerSettings) -> ingest.IntakeSettings:
    return ingest.IntakeSettings(
        key_format=settings.chunk_key_format,
        min_frames=settings.min_chunk_frames,
        expiry_hours=settings.upload_expiry_hours,
        max_open_sessions=settings.max_open_upload_sessions,
    )


def _start(state: ServerState, user: UserInfo) -> StartResponse:
    with state.session_factory() as session:
        token = ingest.start_session(
            session,
            utcnow(),
            user_id=user.id,
            raw_store=state.raw_store,
            max_open_sessions=state.settings.max_open_upload_sessions,
            expiry_hours=state.settings.upload_expiry_hours,
        )
    return StartResponse(
        session_token=token, expires_after_idle_hours=state.settings.upload_expiry_hours
    )


class _FileReceiver:
    """The sink of the file part: opens the session, writes a partial, enforces the limit."""

    def __init__(self, state: ServerState, user: UserInfo, token: str | None) -> None:
        self.state = state
        self.user = user
        self.token = token
        self.name: str | None = None
        self.ref: ingest.SessionRef | None = None
        self.partial: PartialUpload | None = None
        self.too_large = False

    async def open(self, form: dict[str, str], file_name: str | None) -> _FileReceiver:
        self.name = ingest.check_file_name(file_name)
        token = _session_token(self.token, form)
        if not token:
            raise BadRequest(
                f"{self.name}: session_token is required before the file part "
                "(send it as an earlier form field or in the query string)"
            )
        settings = self.state.settings
        self.ref = await run_in_threadpool(self._open_session, token)
        self.partial = self.state.raw_store.open_partial(
            self.ref.storage_path, settings.max_upload_bytes
        )
        return self

    def _open_session(self, token: str) -> ingest.SessionRef:
        with self.state.session_factory() as session:
            return ingest.open_session(
                session,
                utcnow(),
                user_id=self.user.id,
                token=token,
                expiry_hours=self.state.settings.upload_expiry_hours,
            )

    def write(self, data: bytes) -> None:
        if self.too_large or self.partial is None:
            return
        try:
            self.partial.write(data)
        except UploadTooLarge:
            self.too_large = True
            self.partial.discard()

    def discard(self) -> None:
        if self.partial is not None:
            self.partial.discard()


async def _receive_file(
    request: Request, state: ServerState, user: UserInfo, token: str | None
) -> UploadedFileResponse:
    receiver = _FileReceiver(state, user, token)
    body_done = False

    async def tracking_receive() -> Message:
        nonlocal body_done
        message = await request.receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            body_done = True
        return message

    try:
        parsed = await receive_upload(Request(request.scope, tracking_receive), receiver.open)
    except BaseException as exc:
        receiver.discard()
        if not body_done and not isinstance(exc, ClientDisconnect | asyncio.CancelledError):
            await _drain(request, state.settings.max_upload_bytes + DRAIN_EXTRA_BYTES)
        raise
    partial = receiver.partial
    name = receiver.name or "(no name)"
    if not parsed.file_seen or partial is None:
        receiver.discard()
        raise BadRequest("no file part: send the frame as multipart field 'file'")
    if receiver.too_large:
        limit_mb = state.settings.max_upload_bytes / 1e6
        raise ingest.FileTooLarge(name, f"file is larger than the {limit_mb:g} MB limit")
    assert receiver.ref is not None
    try:
        sha256 = await run_in_threadpool(partial.finish)
        received = await run_in_threadpool(_record, state, receiver.ref, partial, sha256, name)
    finally:
        partial.discard()
    return UploadedFileResponse(
        filename=received.filename,
        chunk_key=received.chunk_key,
        date_obs=_iso(received.date_obs),
        object=received.object_name,
        file_id=received.file_id,
        stored_as=received.stored_as,
        sha256=received.sha256,
        size_bytes=received.size_bytes,
        duplicate=received.duplicate,
        note=received.duplicate_note,
    )


def _record(
    state: ServerState, ref: ingest.SessionRef, partial: PartialUpload, sha256: str, name: str
) -> ingest.ReceivedFile:
    with state.session_factory() as session:
        return ingest.receive_file(
            session,
            utcnow(),
            ref=ref,
            partial=partial,
            sha256=sha256,
            client_name=name,
            raw_store=state.raw_store,
            intake=_intake(state.settings),
        )


def _finalize(
    state: ServerState, user: UserInfo, token: str, overwrite: bool, scrub: bool
) -> FinalizeResponse:
    with state.session_factory() as session:
        result = ingest.finalize_session(
            session,
            utcnow(),
            user_id=user.id,
            token=token,
            raw_store=state.raw_store,
            intake=_intake(state.settings),
            overwrite=overwrite,
            scrub_location=scrub,
        )
    return FinalizeResponse(
        jobs=len(result.job_ids),
        job_ids=list(result.job_ids),
        chunks=[c.chunk_key for c in result.chunks],
        skipped=[
            SkippedChunk(
                chunk_key=s.chunk_key,
                frames=s.frame_count,
                reason=s.reason,
                filenames=list(s.filenames),
            )
            for s in result.skipped
        ],
        chunk_details=[
            ChunkDetail(
                chunk_key=c.chunk_key,
                job_id=c.job_id,
                frames=c.frame_count,
                object_name=c.object_name,
                telescope=c.telescope,
                filter_name=c.filter_name,
                exptime=c.exptime_s,
            )
            for c in result.chunks
        ],
        already_finalized=result.repeated,
        scrubbed_files=result.scrubbed_files,
        discarded_files=result.discarded_files,
    )


def _status(state: ServerState, user: UserInfo, token: str) -> StatusResponse:
    with state.session_factory() as session:
        status = ingest.session_status(
            session,
            utcnow(),
            user_id=user.id,
            token=token,
            expiry_hours=state.settings.upload_expiry_hours,
        )
    return StatusResponse(
        session_token=status.token,
        status=status.status,  # type: ignore[arg-type]
        file_count=status.file_count,
        total_size_bytes=status.total_size_bytes,
        created_at=_iso(status.created_at) or "",
        last_activity_at=_iso(status.last_activity_at) or "",
        completed_at=_iso(status.completed_at),
        files=[
            StatusFile(
                file_id=f.file_id,
                filename=f.filename,
                sha256=f.sha256,
                file_size_bytes=f.size_bytes,
                chunk_key=f.chunk_key,
                date_obs=_iso(f.date_obs),
                object=f.object_name,
                job_id=f.job_id,
                stored=f.stored,
            )
            for f in status.files
        ],
        job_ids=list(status.job_ids),
    )


# -- request helpers ----------------------------------------------------------------------


async def _small_form(request: Request) -> dict[str, str]:
    """The text fields of a small form body (start/finalize/status), size-capped."""
    received = 0

    async def bounded_receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > SMALL_FORM_BYTES:
                raise PayloadTooLarge(f"form body larger than {SMALL_FORM_BYTES} bytes")
        return message

    bounded = Request(request.scope, receive=bounded_receive)
    form = await bounded.form(max_files=0, max_fields=32, max_part_size=4096)
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def _drain(request: Request, limit: int) -> None:
    """Read and discard the rest of a refused upload so the client can read the answer."""
    seen = 0
    with contextlib.suppress(Exception):
        while seen <= limit:
            message = await request.receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return


def _session_token(from_query: str | None, form: dict[str, str]) -> str | None:
    """The session token from the query (validated there) or else the form, checked alike."""
    if from_query:
        return from_query
    token = form.get("session_token")
    if token and not fields.is_token(token):
        raise BadRequest(f"session_token (form): {fields.TOKEN_PROBLEM}")
    return token


def _flag(value: str | None, name: str) -> bool:
    text = (value or "").strip().lower()
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise BadRequest(f"{name} must be 0 or 1, not {value!r}")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
