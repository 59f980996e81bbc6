"""JSON shapes of the user read API (``my_jobs``, ``my_stacks``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from crowdsky.server.schemas import fields

ObjectName = Annotated[str, Field(max_length=255), fields.LINE]


class RejectedFrameItem(BaseModel):
    """A frame a stack left out, and the stacking engine's reason."""

    filename: str
    reason: str


class StackItem(BaseModel):
    """One stack, with the fields of the original's later ``my_stacks`` items."""

    id: int
    job_id: int
    chunk_key: str
    object_name: str | None
    telescope: str | None = Field(description="TELESCOP of the frames")
    telescope_id: int | None = Field(
        default=None, description="The caller's telescope (one id per TELESCOP)"
    )
    filter_name: str | None = Field(description="IRCUT or LP")
    eq_mode: int | None = Field(default=None, description="1 on an equatorial mount, else 0")
    sqm: float | None = Field(default=None, description="Sky brightness, mag/arcsec²")
    healpix: int | None = Field(default=None, description="NSIDE 128 RING pixel")
    private: bool = Field(default=False, description="Kept out of the data API")
    ucloud_path: str
    thumbnail_path: str | None
    date_obs_start: str | None
    date_obs_end: str | None
    n_frames_input: int
    n_frames_aligned: int
    n_stars_detected: int | None
    total_exptime: float | None
    ra_deg: float | None = Field(
        description="Centre: the plate solution's when solved, else the telescope's pointing"
    )
    dec_deg: float | None = Field(
        description="Centre: the plate solution's when solved, else the telescope's pointing"
    )
    file_size_bytes: int
    created_at: str
    rejected_frames: list[RejectedFrameItem] = Field(
        default_factory=list, description="Frames the stack left out, and why"
    )


class JobItem(BaseModel):
    """One job with its live status."""

    job_id: int
    chunk_key: str
    object_name: str | None
    frame_count: int
    status: str = Field(description="pending, processing, completed, retry or failed")
    attempts: int
    progress: float | None
    progress_message: str | None
    error_message: str | None
    errors: list[str] = Field(description="Every failed attempt's error, oldest first")
    created_at: str
    started_at: str | None
    completed_at: str | None
    stack: StackItem | None


class JobsResponse(BaseModel):
    """The caller's jobs."""

    jobs: list[JobItem]
