"""JSON and file endpoints of the web pages, under ``/web/api`` (cookie session + CSRF).

These serve the browser only; the public client API (``/api/*.php``) is separate.
"""

from __future__ import annotations

import io
import json
import threading
from typing import Annotated, Any

import numpy as np
from astropy.io import fits
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from crowdsky.accounts import UserInfo
from crowdsky.db.types import utcnow
from crowdsky.queue import list_user_jobs
from crowdsky.server.stack_files import (
    DOWNLOAD_FORMATS,
    MAX_READ_BYTES,
    content_disposition,
    send_download,
)
from crowdsky.stacks import InvalidQuery, StackFileMissing
from crowdsky.storage.result_reader import (
    ResultFileMissing,
    ResultReader,
    ResultStoreUnavailable,
    StoredFile,
)
from crowdsky.web import queries
from crowdsky.web.cookies import CSRF_FIELD, SAFE_METHODS
from crowdsky.web.identity import csrf_ok, session_user, web_state
from crowdsky.web.zipstream import stream_zip

router = APIRouter(prefix="/web/api", include_in_schema=False)
JOB_LIMIT = 1000
MAX_ZIP_STACKS = 5000


def require_web_user(request: Request) -> UserInfo:
    """The session user; writes also need the CSRF header (else 403), no session 401."""
    user = session_user(request)
    if user is None:
        raise HTTPException(401, "log in first")
    if request.method not in SAFE_METHODS and not csrf_ok(request):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page")
    return user


WebUser = Annotated[UserInfo, Depends(require_web_user)]


def _no_store(payload: Any) -> JSONResponse:
    return JSONResponse(payload, headers={"cache-control": "no-store"})


def _open(request: Request, store_path: str | None, what: str) -> StoredFile:
    """Open a file of the result store (``CROWDSKY_RESULT_STORE``), 404 when it is gone."""
    if not store_path:
        raise HTTPException(404, f"this stack has no {what}")
    try:
        return request.app.state.crowdsky.result_reader.open_file(store_path)
    except ResultFileMissing as exc:
        raise HTTPException(404, f"the {what} is not in the result store") from exc
    except ResultStoreUnavailable as exc:
        raise HTTPException(503, f"the result store cannot be read: {exc}") from exc


def _streamed(stored: StoredFile, media_type: str, headers: dict[str, str]) -> StreamingResponse:
    if stored.size is not None:
        headers = {**headers, "content-length": str(stored.size)}
    return StreamingResponse(stored.chunks, media_type=media_type, headers=headers)


@router.get("/jobs")
def jobs(request: Request, user: WebUser) -> JSONResponse:
    """The user's upload sessions and jobs, for the live jobs page."""
    state = request.app.state.crowdsky
    with state.session_factory() as session:
        sessions = queries.user_sessions(session, user.id)
        views = list_user_jobs(session, user_id=user.id, limit=JOB_LIMIT)
    return _no_store(
        {
            "sessions": sessions,
            "jobs": [
                {
                    "id": v.job_id,
                    "session": v.upload_session_id,
                    "chunk_key": v.chunk_key,
                    "object": v.object_name,
                    "frames": v.frame_count,
                    "status": v.status.value,
                    "attempts": v.attempts,
                    "progress": v.progress,
                    "progress_message": v.progress_message,
                    "error": v.error_message,
                    "errors": list(v.errors),
                    "created": queries.iso(v.created_at),
                    "started": queries.iso(v.started_at),
                    "completed": queries.iso(v.completed_at),
                    "stack": None
                    if v.stack is None
                    else {
                        "id": v.stack.id,
                        "aligned": v.stack.n_frames_aligned,
                        "input": v.stack.n_frames_input,
                        "stars": v.stack.n_stars_detected,
                        "exptime": v.stack.total_exptime,
                    },
                }
                for v in views
            ],
        }
    )


@router.get("/jobs/{job_id}/frames")
def job_frames(request: Request, user: WebUser, job_id: int) -> JSONResponse:
    """Per frame of a completed job's stack: used or rejected, and why (its FRAMES table)."""
    with request.app.state.crowdsky.session_factory() as session:
        views = [
            v
            for v in list_user_jobs(session, user_id=user.id, limit=JOB_LIMIT)
            if v.job_id == job_id
        ]
    if not views or views[0].stack is None:
        raise HTTPException(404, "no stack for this job")
    stored = _open(request, views[0].stack.ucloud_path, "stack file")
    try:
        data = stored.read_all(MAX_READ_BYTES)
    except ResultStoreUnavailable as exc:
        raise HTTPException(503, f"the result store cannot be read: {exc}") from exc
    frames = []
    with fits.open(io.BytesIO(data), memmap=False) as hdul:
        if "FRAMES" in hdul:
            table = hdul["FRAMES"].data
            accepted = np.asarray(table["ACCEPTED"], dtype=bool)
            for i in range(len(table)):
                frames.append(
                    {
                        "file": str(table["FILENAME"][i]).strip(),
                        "used": bool(accepted[i]),
                        "reason": str(table["REASON"][i]).strip(),
                    }
                )
    return _no_store({"frames": frames})


@router.post("/jobs/{job_id}/delete")
def delete_job(request: Request, user: WebUser, job_id: int) -> JSONResponse:
    """Delete one of the user's jobs with its frames and stack."""
    state = request.app.state.crowdsky
    with state.session_factory() as session:
        try:
            queries.delete_job(session, user.id, job_id, state.raw_store, state.result_reader)
        except queries.NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except queries.Conflict as exc:
            raise HTTPException(409, str(exc)) from exc
    return _no_store({"deleted": job_id})


@router.post("/sessions/{session_id}/delete")
def delete_session(request: Request, user: WebUser, session_id: int) -> JSONResponse:
    """Delete one of the user's upload sessions with everything made from it."""
    state = request.app.state.crowdsky
    with state.session_factory() as session:
        try:
            queries.delete_upload_session(
                session, user.id, session_id, state.raw_store, state.result_reader
            )
        except queries.NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except queries.Conflict as exc:
            raise HTTPException(409, str(exc)) from exc
    return _no_store({"deleted": session_id})


class _StacksCache:
    """The encoded stacks document per user, reused while the user's stacks are unchanged."""

    def __init__(self, max_users: int) -> None:
        self.max_users = max_users
        self._entries: dict[int, tuple[str, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, user_id: int, version: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(user_id)
        return entry[1] if entry is not None and entry[0] == version else None

    def put(self, user_id: int, version: str, body: bytes) -> None:
        with self._lock:
            if len(self._entries) >= self.max_users:
                self._entries.pop(next(iter(self._entries)))
            self._entries[user_id] = (version, body)


_stacks_cache = _StacksCache(max_users=64)


@router.get("/stacks")
def stacks(request: Request, user: WebUser) -> Response:
    """Every stack of the user as column arrays, plus HEALPix cell aggregates.

    Revalidated with an ETag (the browser keeps the document; an unchanged set answers
    304), and the encoded document is kept per user while the stacks do not change.
    """
    with request.app.state.crowdsky.session_factory() as session:
        version = queries.stacks_version(session, user.id)
        etag = f'"{version}"'
        headers = {"etag": etag, "cache-control": "private, no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        body = _stacks_cache.get(user.id, version)
        if body is None:
            body = json.dumps(queries.user_stacks(session, user.id), separators=(",", ":")).encode()
            _stacks_cache.put(user.id, version, body)
    return Response(body, media_type="application/json", headers=headers)


@router.get("/coverage")
def coverage(request: Request) -> JSONResponse:
    """Public sky coverage (cells of stacks whose owners made them public); no login."""
    with request.app.state.crowdsky.session_factory() as session:
        return JSONResponse({"cells": queries.public_coverage(session)})


@router.get("/preferences")
def preferences(request: Request, user: WebUser) -> JSONResponse:
    """The user's defaults (the upload page reads ``scrub_location``)."""
    with request.app.state.crowdsky.session_factory() as session:
        return _no_store(queries.preferences(session, user.id))


def _one_stack(request: Request, user: UserInfo, stack_id: int) -> queries.StackFile:
    with request.app.state.crowdsky.session_factory() as session:
        found = queries.stack_files(session, user.id, [stack_id])
    if not found:
        raise HTTPException(404, "no such stack")
    return found[0]


@router.get("/stacks/{stack_id}/fits")
def stack_fits(request: Request, user: WebUser, stack_id: int, format: str = "fits") -> Response:
    """Download one stack: the FITS product, or ``format=cube|tiff`` (interchange copies)."""
    item = _one_stack(request, user, stack_id)
    state = request.app.state.crowdsky
    if format not in DOWNLOAD_FORMATS:
        raise HTTPException(400, f"format must be one of {', '.join(DOWNLOAD_FORMATS)}")
    if format != "fits":
        try:
            return send_download(state, item.fits_path, format)
        except StackFileMissing as exc:
            raise HTTPException(404, str(exc)) from exc
        except InvalidQuery as exc:
            raise HTTPException(400, str(exc)) from exc
        except ResultStoreUnavailable as exc:
            raise HTTPException(503, f"the result store cannot be read: {exc}") from exc
    stored = _open(request, item.fits_path, "stack file")
    return _streamed(
        stored, "application/fits", {"content-disposition": content_disposition(item.download_name)}
    )


@router.get("/stacks/{stack_id}/thumbnail")
def stack_thumbnail(request: Request, user: WebUser, stack_id: int) -> Response:
    """A stack's PNG preview."""
    item = _one_stack(request, user, stack_id)
    stored = _open(request, item.thumbnail_path, "thumbnail")
    return _streamed(stored, "image/png", {"cache-control": "private, max-age=3600"})


@router.post("/stacks/zip")
async def stacks_zip(request: Request) -> StreamingResponse:
    """A selection of stacks as one ZIP, streamed as it is written (a plain form POST).

    Each stack is read from the result store while it is written; one that vanished
    after the first was found is named in the archive's ``MISSING.txt``.
    """
    form = await request.form(max_files=0, max_fields=MAX_ZIP_STACKS + 4, max_part_size=65536)
    if not csrf_ok(request, str(form.get(CSRF_FIELD, ""))):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page")
    ids_text = str(form.get("ids", ""))
    try:
        ids = [int(x) for x in ids_text.split(",") if x.strip()][:MAX_ZIP_STACKS]
    except ValueError as exc:
        raise HTTPException(400, "ids must be stack numbers separated by commas") from exc
    from starlette.concurrency import run_in_threadpool

    user = await run_in_threadpool(session_user, request)
    if user is None:
        raise HTTPException(401, "log in first")

    def load() -> list[queries.StackFile]:
        with request.app.state.crowdsky.session_factory() as session:
            return queries.stack_files(session, user.id, ids)

    items = await run_in_threadpool(load)
    reader = request.app.state.crowdsky.result_reader
    members = await run_in_threadpool(_zip_members, reader, items)
    if not members:
        raise HTTPException(404, "none of the selected stacks is in the result store")
    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        stream_zip(members),
        media_type="application/zip",
        headers={"content-disposition": f'attachment; filename="crowdsky-stacks-{stamp}.zip"'},
    )


def _zip_members(reader: ResultReader, items: list[queries.StackFile]) -> list[tuple[str, Any]]:
    """The ZIP's members from the first stack the store has (opened now, so a selection
    of which nothing is left is a 404) onwards; later ones open as they are written."""
    for index, item in enumerate(items):
        try:
            first = reader.open_file(item.fits_path)
        except ResultFileMissing:
            continue
        except ResultStoreUnavailable as exc:
            raise HTTPException(503, f"the result store cannot be read: {exc}") from exc
        rest = [(i.download_name, _source(reader, i.fits_path)) for i in items[index + 1 :]]
        return [(item.download_name, _opened(first)), *rest]
    return []


def _source(reader: ResultReader, store_path: str) -> Any:
    return lambda: reader.open_file(store_path).chunks


def _opened(stored: StoredFile) -> Any:
    return lambda: stored.chunks


@router.get("/ops")
def ops(request: Request, user: WebUser) -> JSONResponse:
    """Operations figures (admins only)."""
    if not web_state(request).is_admin(user):
        raise HTTPException(403, "for administrators")
    state = request.app.state.crowdsky
    with state.session_factory() as session:
        return _no_store(queries.operations(session, utcnow(), state.settings.uploads_dir))
