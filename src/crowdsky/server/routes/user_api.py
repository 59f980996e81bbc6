"""What a user can read about their own work: jobs with live status, and finished stacks.

``my_stacks`` keeps the path and item fields of the original's later endpoint used by
its app and bot (``clients.md``): the whole list, streamed; ``my_jobs`` is new (the
original's job page never refreshed and showed no errors).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from crowdsky import stacks
from crowdsky.queue import JobView, StackView, list_user_jobs
from crowdsky.server.deps import DbSession, State
from crowdsky.server.routes import php_paths
from crowdsky.server.schemas import fields
from crowdsky.server.schemas.user_api import (
    JobItem,
    JobsResponse,
    ObjectName,
    RejectedFrameItem,
    StackItem,
)
from crowdsky.server.schemas.worker_api import ErrorResponse
from crowdsky.server.user_auth import AuthenticatedUser
from crowdsky.timestamps import format_utc

router = APIRouter(tags=["user API"])
#: Deepest page a ``my_stacks`` offset may ask for.
MAX_OFFSET = 10_000_000
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed request"},
    401: {"model": ErrorResponse, "description": "Missing or wrong credentials"},
}


def _stack_item(view: StackView) -> StackItem:
    return StackItem(
        id=view.id,
        job_id=view.job_id,
        chunk_key=view.chunk_key,
        object_name=view.object_name,
        telescope=view.telescope,
        filter_name=view.filter_name,
        ucloud_path=view.ucloud_path,
        thumbnail_path=view.thumbnail_path,
        date_obs_start=format_utc(view.date_obs_start),
        date_obs_end=format_utc(view.date_obs_end),
        n_frames_input=view.n_frames_input,
        n_frames_aligned=view.n_frames_aligned,
        n_stars_detected=view.n_stars_detected,
        total_exptime=view.total_exptime,
        ra_deg=view.ra_deg,
        dec_deg=view.dec_deg,
        file_size_bytes=view.file_size_bytes,
        created_at=format_utc(view.created_at) or "",
        rejected_frames=[
            RejectedFrameItem(filename=name, reason=reason) for name, reason in view.rejected_frames
        ],
    )


def _job_item(view: JobView) -> JobItem:
    return JobItem(
        job_id=view.job_id,
        chunk_key=view.chunk_key,
        object_name=view.object_name,
        frame_count=view.frame_count,
        status=view.status.value,
        attempts=view.attempts,
        progress=view.progress,
        progress_message=view.progress_message,
        error_message=view.error_message,
        errors=list(view.errors),
        created_at=format_utc(view.created_at) or "",
        started_at=format_utc(view.started_at),
        completed_at=format_utc(view.completed_at),
        stack=_stack_item(view.stack) if view.stack else None,
    )


def my_jobs(
    session: DbSession,
    user: AuthenticatedUser,
    session_token: Annotated[
        fields.Token | None, Query(description="Only the jobs of this upload session")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobsResponse:
    """The caller's jobs (newest ``limit``, listed oldest first) with status and results."""
    views = list_user_jobs(session, user_id=user.id, session_token=session_token, limit=limit)
    return JobsResponse(jobs=[_job_item(v) for v in views])


def my_stacks(
    state: State,
    user: AuthenticatedUser,
    object: Annotated[ObjectName | None, Query(description="Object name")] = None,
    limit: Annotated[
        int | None,
        Query(ge=1, le=2**31 - 1, description="At most this many (default: the whole list)"),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Skip this many")] = 0,
    since: Annotated[
        datetime | None,
        Query(description="Only stacks recorded at or after this ISO 8601 time"),
    ] = None,
) -> StreamingResponse:
    """The caller's **whole** list of stacks, newest observation first (the original's
    ``my_stacks``; also the clients' login probe: 401 for bad credentials).

    A bare JSON array, streamed from one database cursor: the app, the bot and
    seestarpy build their set of uploaded chunk keys from one unpaged call.
    ``limit``/``offset``/``since`` are for new clients that page or synchronise.

    Example: ``curl -u alice:PASSWORD 'https://HOST/api/my_stacks.php?object=M%2081'`` →
    ``[{"id": 7, "chunk_key": "20260227.90_HP006252", "object_name": "M 81",
    "telescope_id": 1, "filter_name": "LP", "eq_mode": 1, "sqm": null, ...}]``
    """
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    batches = stacks.iter_user_stacks(
        state.session_factory,
        user_id=user.id,
        object_name=object,
        since=since,
        limit=limit,
        offset=offset,
    )
    return StreamingResponse(_json_array(batches), media_type="application/json")


def _json_array(batches: Iterator[list[stacks.StackRecord]]) -> Iterator[bytes]:
    """``[item,item,...]`` written batch by batch (one thread hop per batch, not per row)."""
    opened = False
    try:
        for batch in batches:
            if not batch:
                continue
            text = ",".join(json.dumps(stack_json(r), separators=(",", ":")) for r in batch)
            yield (b"," if opened else b"[") + text.encode("utf-8")
            opened = True
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    yield b"]" if opened else b"[]"


def stack_json(record: stacks.StackRecord) -> dict[str, Any]:
    """One ``my_stacks`` item: every field of ``clients.md`` plus ours (see StackItem)."""
    return {
        "id": record.id,
        "job_id": record.job_id,
        "chunk_key": record.chunk_key,
        "object_name": record.object_name,
        "telescope": record.telescope,
        "telescope_id": record.telescope_id,
        "filter_name": record.filter_name,
        "eq_mode": record.eq_mode,
        "sqm": record.sqm,
        "healpix": record.healpix,
        "private": record.is_private,
        "ucloud_path": record.ucloud_path,
        "thumbnail_path": record.thumbnail_path,
        "date_obs_start": format_utc(record.date_obs_start),
        "date_obs_end": format_utc(record.date_obs_end),
        "n_frames_input": record.n_frames_input,
        "n_frames_aligned": record.n_frames_aligned,
        "n_stars_detected": record.n_stars_detected,
        "total_exptime": record.total_exptime,
        "ra_deg": record.ra_deg,
        "dec_deg": record.dec_deg,
        "file_size_bytes": record.file_size_bytes,
        "created_at": format_utc(record.created_at) or "",
    }


php_paths.add_php_route(
    router, "my_jobs", my_jobs, methods=["GET"], response_model=JobsResponse, responses=ERRORS
)
php_paths.add_php_route(
    router,
    "my_stacks",
    my_stacks,
    methods=["GET"],
    response_model=list[StackItem],
    responses=ERRORS,
)
