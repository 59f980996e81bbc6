"""JSON shapes of the raw upload API (``raw_upload.php`` of the later original server).

The original's fields come first (``session_token``; ``ok, filename, chunk_key,
date_obs``; ``ok, jobs, job_ids, chunks, skipped``); additions are optional and
additive (``sha256``, ``duplicate``, per-chunk details). ``chunks`` stays a list of
chunk keys as the original returned it; ``chunk_details`` says which job has which.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Action = Literal["start", "file", "finalize", "status"]


class ErrorResponse(BaseModel):
    """Every 4xx answer: ``{"error": "<file or session>: <problem>"}``."""

    error: str


class StartResponse(BaseModel):
    """A new upload session."""

    session_token: str = Field(description="32 hex characters; send it with every file")
    expires_after_idle_hours: float


class UploadedFileResponse(BaseModel):
    """One accepted (or recognised duplicate) file."""

    ok: Literal[True] = True
    filename: str
    chunk_key: str | None = Field(
        description="Provisional key of this frame alone; finalize assigns the group's key"
    )
    date_obs: str | None
    object: str | None
    file_id: int
    stored_as: str
    sha256: str
    size_bytes: int
    duplicate: bool = Field(description="Same content was already received; stored once")
    note: str | None = None


class ChunkDetail(BaseModel):
    """One queued chunk."""

    chunk_key: str
    job_id: int
    frames: int
    object_name: str | None
    telescope: str | None
    filter_name: str | None
    exptime: float | None


class SkippedChunk(BaseModel):
    """A group of frames that got no job, and why."""

    chunk_key: str
    frames: int
    reason: str
    filenames: list[str]


class FinalizeResponse(BaseModel):
    """What finalize queued and what it skipped."""

    ok: Literal[True] = True
    jobs: int
    job_ids: list[int]
    chunks: list[str]
    skipped: list[SkippedChunk]
    chunk_details: list[ChunkDetail]
    already_finalized: bool = False
    scrubbed_files: int = Field(
        0,
        description="Files of the queued jobs rewritten without SITELAT/SITELONG "
        "(scrub_location=1); the database forgets the site of every file of the session.",
    )
    discarded_files: int = Field(
        0,
        description="Files of skipped chunks deleted by this finalize (too few frames, or "
        "copies of files already stacked or queued); 0 when repeated.",
    )


class StatusFile(BaseModel):
    """One received file."""

    file_id: int
    filename: str
    sha256: str
    file_size_bytes: int
    chunk_key: str | None
    date_obs: str | None
    object: str | None
    job_id: int | None
    stored: bool = Field(
        description="The server still holds the file; false once it was stacked, or "
        "deleted as part of a skipped chunk at finalize (see `job_id`)."
    )


class StatusResponse(BaseModel):
    """A session and its files (hashes included, so a client uploads only what is missing)."""

    session_token: str
    status: Literal["uploading", "complete", "expired"]
    file_count: int
    total_size_bytes: int
    created_at: str
    last_activity_at: str
    completed_at: str | None
    files: list[StatusFile]
    job_ids: list[int]
