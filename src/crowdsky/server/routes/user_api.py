"""What a user can read about their own work: jobs with live status, and finished stacks.

``my_stacks`` keeps the path and item fields of the original's later endpoint used by
its app and bot; ``my_jobs`` is new (the original's job page never refreshed and
showed no errors).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from crowdsky.queue import JobView, StackView, list_user_jobs, list_user_stacks
from crowdsky.server.deps import DbSession
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

router = APIRouter(tags=["user API"])
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed request"},
    401: {"model": ErrorResponse, "description": "Missing or wrong credentials"},
}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


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
        date_obs_start=_iso(view.date_obs_start),
        date_obs_end=_iso(view.date_obs_end),
        n_frames_input=view.n_frames_input,
        n_frames_aligned=view.n_frames_aligned,
        n_stars_detected=view.n_stars_detected,
        total_exptime=view.total_exptime,
        ra_deg=view.ra_deg,
        dec_deg=view.dec_deg,
        file_size_bytes=view.file_size_bytes,
        created_at=_iso(view.created_at) or "",
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
        created_at=_iso(view.created_at) or "",
        started_at=_iso(view.started_at),
        completed_at=_iso(view.completed_at),
        stack=_stack_item(view.stack) if view.stack else None,
    )


def _both(path: str) -> list[str]:
    return [f"/api/{path}.php", f"/api/{path}"]


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
    session: DbSession,
    user: AuthenticatedUser,
    object: Annotated[ObjectName | None, Query(description="Object name")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[StackItem]:
    """The caller's stacks, newest observation first (the original's ``my_stacks``)."""
    views = list_user_stacks(session, user_id=user.id, object_name=object, limit=limit)
    return [_stack_item(v) for v in views]


for _url in _both("my_jobs"):
    router.add_api_route(
        _url, my_jobs, methods=["GET"], response_model=JobsResponse, responses=ERRORS
    )
for _url in _both("my_stacks"):
    router.add_api_route(
        _url, my_stacks, methods=["GET"], response_model=list[StackItem], responses=ERRORS
    )
