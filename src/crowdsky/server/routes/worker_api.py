"""The worker API of ``worker-api-reference.md``: same paths, methods, codes and shapes.

Each endpoint is served at the spec's ``.php`` path and at a clean alias without it.
Handlers parse, authorise (a dependency), call one queue function and shape the reply.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import FileResponse, PlainTextResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from crowdsky import queue, retention, stacks
from crowdsky.cleanup import run_cleanup
from crowdsky.db.types import utcnow
from crowdsky.server import raw_download, result_uploads
from crowdsky.server.auth import WorkerPrincipal, require_worker_or_query_key
from crowdsky.server.deps import AuthenticatedWorker, DbSession, State
from crowdsky.server.routes import php_paths
from crowdsky.server.schemas.worker_api import (
    CompleteJobRequest,
    CompleteJobResponse,
    ErrorResponse,
    FailJobRequest,
    FailJobResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    JobFileItem,
    JobFilesResponse,
    JobId,
    LeaseToken,
    NextJobResponse,
    ReleaseJobRequest,
    ReleaseJobResponse,
    ResultUploadItem,
    ResultUploadRequest,
    ResultUploadResponse,
    WorkerId,
)
from crowdsky.server.state import ServerState
from crowdsky.timestamps import format_utc

router = APIRouter(tags=["worker API"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed request"},
    401: {"model": ErrorResponse, "description": "Missing or wrong worker key"},
}
JOB_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": ErrorResponse, "description": "No such job"},
    409: {
        "model": ErrorResponse,
        "description": "Job in the wrong state or held by another worker",
    },
}


def _route(path: str, method: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
    """Register a handler at ``/api/<path>.php`` and at the alias ``/api/<path>``."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        php_paths.add_php_route(router, path, func, methods=[method], **kwargs)
        return func

    return decorator


def _number_text(value: float | None) -> str | None:
    """A float as PHP printed it: ``10.0`` -> ``"10"``, ``83.633`` -> ``"83.633"``."""
    if value is None:
        return None
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _worker_name(given: str | None, principal: WorkerPrincipal) -> str:
    """The worker id recorded on a claim: as given, else the token's name, else 'default'."""
    return given or principal.token_name or "default"


def _caller(principal: WorkerPrincipal) -> queue.WorkerCaller:
    """The credential every job-scoped call is checked against (the job's claimer)."""
    return queue.WorkerCaller(token_name=principal.token_name)


@_route(
    "next_job",
    "GET",
    response_model=NextJobResponse,
    responses={**ERRORS, 204: {"description": "No job available (empty body)"}},
    summary="Claim the next job",
)
async def next_job(
    state: State,
    principal: AuthenticatedWorker,
    worker_id: Annotated[WorkerId | None, Query(description="Identifier of this worker")] = None,
) -> Response:
    """Claim the oldest pending job, else the oldest due retry; 204 when there is none.

    The busiest endpoint: it runs its database work in one worker-thread call and
    serializes its small answer itself (the shape is ``NextJobResponse``).
    """
    name = _worker_name(worker_id, principal)
    async with state.claim_slots:  # waiting here is cheap; contending in the database is not
        claimed = await run_in_threadpool(_claim, state, name, principal.token_name)
    if claimed is None:
        return Response(status_code=204)
    body = {
        "job_id": claimed.job_id,
        "user_id": claimed.user_id,
        "upload_session_id": claimed.upload_session_id,
        "chunk_key": claimed.chunk_key,
        "object_name": claimed.object_name,
        "frame_count": claimed.frame_count,
        "session_ucloud_path": claimed.session_path,
        "lease_token": claimed.lease_token,
        "lease_expires_at": format_utc(claimed.lease_expires_at),
        "lease_seconds": claimed.lease_seconds,
        "attempt": claimed.attempt,
        "kind": claimed.kind,
    }
    return Response(json.dumps(body).encode(), media_type="application/json")


def _claim(
    state: ServerState, worker_name: str, holder_token: str | None
) -> queue.ClaimedJob | None:
    now = utcnow()
    state.maybe_reap(now)
    with state.session_factory() as session:
        return queue.claim_next_job(
            session,
            now,
            worker_id=worker_name,
            lease_seconds=state.settings.job_lease_seconds,
            holder_token=holder_token,
        )


@_route("job_files", "GET", response_model=JobFilesResponse, responses=JOB_ERRORS)
def job_files(
    session: DbSession,
    principal: AuthenticatedWorker,
    job_id: Annotated[JobId, Query(description="The stacking job id")],
    worker_id: Annotated[WorkerId | None, Query()] = None,
    lease_token: Annotated[LeaseToken | None, Query()] = None,
) -> JobFilesResponse:
    """The raw files of a job being processed, ordered by DATE-OBS."""
    listing = queue.list_job_files(
        session,
        job_id=job_id,
        worker_id=worker_id,
        lease_token=lease_token,
        caller=_caller(principal),
    )
    return JobFilesResponse(
        job_id=listing.job_id,
        chunk_key=listing.chunk_key,
        files=[
            JobFileItem(
                id=str(entry.id),
                filename=entry.filename,
                ucloud_path=entry.storage_path,
                file_size_bytes=str(entry.file_size_bytes),
                fits_date_obs=entry.date_obs.strftime("%Y-%m-%d %H:%M:%S")
                if entry.date_obs
                else None,
                fits_date_obs_iso=format_utc(entry.date_obs) if entry.date_obs else None,
                fits_exptime=_number_text(entry.exptime),
                fits_ra=_number_text(entry.ra_deg),
                fits_dec=_number_text(entry.dec_deg),
            )
            for entry in listing.files
        ],
    )


@_route(
    "download_raw",
    "GET",
    response_class=FileResponse,
    responses={
        **JOB_ERRORS,
        200: {"content": {"application/octet-stream": {}}, "description": "The raw FITS file"},
        307: {"description": "Fetch the file from the object store (presigned URL)"},
        404: {"model": ErrorResponse, "description": "File does not exist or was deleted"},
    },
)
def download_raw(
    state: State,
    session: DbSession,
    principal: AuthenticatedWorker,
    file_id: Annotated[int, Query(gt=0, lt=2**31, description="raw_files.id")],
) -> Response:
    """Stream one raw file of a job being processed, to its holder (or redirect to the store)."""
    location = queue.locate_raw_file(session, file_id=file_id, caller=_caller(principal))
    return raw_download.raw_file_response(state, location.storage_path, location.filename, file_id)


@_route("complete_job", "POST", response_model=CompleteJobResponse, responses=JOB_ERRORS)
def complete_job(
    state: State,
    session: DbSession,
    principal: AuthenticatedWorker,
    body: CompleteJobRequest,
) -> CompleteJobResponse:
    """Record the stack (replacing the slot's earlier one), mark the job completed, then
    delete its raw files (unless kept for a re-stack) and the replaced stack's files
    (local ones here; the answer names them for the worker's remote result store).

    With an S3 result store (``CROWDSKY_RESULT_STORE``) the stack must first be at the
    job's path with the reported size, and the thumbnail, if reported, at its path.
    """
    if state.result_store is not None:
        _verify_results(state, session, principal, body)
    outcome = queue.complete_job(
        session,
        utcnow(),
        queue.Completion(
            job_id=body.job_id,
            ucloud_path=body.ucloud_path,
            thumbnail_path=body.thumbnail_path,
            n_frames_input=body.n_frames_input,
            n_frames_aligned=body.n_frames_aligned,
            total_exptime=body.total_exptime,
            date_obs_start=body.date_obs_start,
            date_obs_end=body.date_obs_end,
            ra_deg=body.ra_deg,
            dec_deg=body.dec_deg,
            file_size_bytes=body.file_size_bytes,
            n_stars_detected=body.n_stars_detected,
            rejected_frames=tuple((f.filename, f.reason) for f in body.rejected_frames or ()),
            astrometry=body.plate_solve_report(),
        ),
        worker_id=body.worker_id,
        lease_token=body.lease_token,
        caller=_caller(principal),
        restack_window_hours=state.settings.restack_window_hours,
    )
    if outcome.freed is not None:  # committed: only now may the raw files go
        retention.delete_freed(session, state.raw_store, outcome.freed)
    # the slot's earlier stacks, whose rows are gone (never the files just recorded)
    replaced = [
        p for p in outcome.replaced_results if p not in (body.ucloud_path, body.thumbnail_path)
    ]
    if replaced:
        stacks.discard_result_files(state.result_reader, replaced)
    return CompleteJobResponse(replaced_files=replaced)


def _verify_results(
    state: ServerState, session: Session, principal: WorkerPrincipal, body: CompleteJobRequest
) -> None:
    assert state.result_store is not None
    try:
        job = queue.held_job(
            session,
            job_id=body.job_id,
            worker_id=body.worker_id,
            lease_token=body.lease_token,
            caller=_caller(principal),
        )
    except queue.WrongState:
        return  # not processing: complete_job answers (a repeat of a completion is fine)
    result_uploads.verify_results(
        state.result_store, job, body.ucloud_path, body.file_size_bytes, body.thumbnail_path
    )


@_route(
    "result_upload_urls",
    "POST",
    response_model=ResultUploadResponse,
    responses={
        **JOB_ERRORS,
        404: {"model": ErrorResponse, "description": "No such job, or no S3 result store"},
    },
    summary="Presigned PUT URLs for a held job's results",
)
def result_upload_urls(
    state: State,
    session: DbSession,
    principal: AuthenticatedWorker,
    body: ResultUploadRequest,
) -> ResultUploadResponse:
    """Extension: one presigned PUT URL per result file (stack, thumbnail, star list) of a
    job the caller holds, so a worker publishes results without the store's credentials.
    Report the returned paths as ``ucloud_path`` and ``thumbnail_path``."""
    job = queue.held_job(
        session,
        job_id=body.job_id,
        worker_id=body.worker_id,
        lease_token=body.lease_token,
        caller=_caller(principal),
    )
    expires_s = state.settings.s3_presign_seconds
    signed = result_uploads.sign_uploads(state.result_store, job, expires_s)
    return ResultUploadResponse(
        job_id=job.job_id,
        expires_in=expires_s,
        files=[ResultUploadItem(kind=s.kind, path=s.path, url=s.url) for s in signed],  # type: ignore[arg-type]
    )


@_route("fail_job", "POST", response_model=FailJobResponse, responses=JOB_ERRORS)
def fail_job(
    state: State,
    session: DbSession,
    principal: AuthenticatedWorker,
    body: FailJobRequest,
) -> FailJobResponse:
    """Record a failed attempt: ``retry`` (after a backoff) or, the third time, ``failed``."""
    outcome = queue.fail_job(
        session,
        utcnow(),
        job_id=body.job_id,
        error_message=body.error_message,
        backoff_seconds=state.settings.retry_backoff_seconds,
        worker_id=body.worker_id,
        lease_token=body.lease_token,
        caller=_caller(principal),
    )
    return FailJobResponse(status=outcome.status.value)  # type: ignore[arg-type]


@_route("release_job", "POST", response_model=ReleaseJobResponse, responses=JOB_ERRORS)
def release_job(
    session: DbSession,
    principal: AuthenticatedWorker,
    body: ReleaseJobRequest,
) -> ReleaseJobResponse:
    """Extension: give a held job back to the queue (no failed attempt is counted)."""
    outcome = queue.release_job(
        session,
        utcnow(),
        job_id=body.job_id,
        reason=body.reason,
        worker_id=body.worker_id,
        lease_token=body.lease_token,
        caller=_caller(principal),
    )
    return ReleaseJobResponse(status=outcome.status.value)  # type: ignore[arg-type]


@_route("heartbeat", "POST", response_model=HeartbeatResponse, responses=JOB_ERRORS)
def heartbeat(
    state: State,
    session: DbSession,
    principal: AuthenticatedWorker,
    body: HeartbeatRequest,
) -> HeartbeatResponse:
    """Extension: renew the lease of a job the caller holds and record its progress."""
    renewal = queue.extend_lease(
        session,
        utcnow(),
        job_id=body.job_id,
        lease_seconds=state.settings.job_lease_seconds,
        worker_id=body.worker_id,
        lease_token=body.lease_token,
        caller=_caller(principal),
        progress=queue.ProgressReport(body.progress, body.message),
    )
    return HeartbeatResponse(lease_expires_at=format_utc(renewal.lease_expires_at))


@_route(
    "cleanup",
    "GET",
    response_class=PlainTextResponse,
    responses={
        401: {"model": ErrorResponse, "description": "Missing or wrong key"},
        200: {"content": {"text/plain": {}}, "description": "One-line summary"},
    },
)
def cleanup(
    state: State,
    session: DbSession,
    _principal: Annotated[WorkerPrincipal, Depends(require_worker_or_query_key)],
    key: Annotated[str | None, Query(description="The worker key (cron use)")] = None,
) -> PlainTextResponse:
    """Expire abandoned uploads, reap expired leases, delete raws nobody needs any more."""
    settings = state.settings
    report = run_cleanup(
        session,
        utcnow(),
        raw_store=state.raw_store,
        upload_expiry_hours=settings.upload_expiry_hours,
        failed_raw_retention_hours=settings.failed_raw_retention_hours,
        restack_window_hours=settings.restack_window_hours,
        backoff_seconds=settings.retry_backoff_seconds,
    )
    return PlainTextResponse(report.summary())
