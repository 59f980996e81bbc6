"""JSON shapes of the worker API, as in ``worker-api-reference.md``.

``job_files`` values are strings, exactly as the original PHP server sent them (its
example shows ``"id": "101"``, ``"fits_exptime": "10"``), so existing workers parse
them unchanged. Extensions (lease fields, ``worker_id``/``lease_token`` in requests,
the heartbeat) are optional and additive: old workers ignore and omit them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crowdsky.queue import PlateSolveReport
from crowdsky.server.schemas import fields

#: A chunk is one night of one target; 10^7 s (116 days) is far beyond any real stack,
#: and keeps the value inside MariaDB's single-precision FLOAT column.
MAX_TOTAL_EXPTIME_S = 1e7

WorkerId = Annotated[str, Field(min_length=1, max_length=64), fields.NAME]
LeaseToken = fields.Token
JobId = Annotated[int, Field(gt=0, lt=2**31, description="stacking_jobs.id")]
Count = Annotated[int, Field(ge=0, lt=2**31)]
PathText = Annotated[str, Field(max_length=512), fields.LINE]


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer."""

    error: str


class OkResponse(BaseModel):
    """``{"ok": true}``."""

    ok: Literal[True] = True


class CompleteJobResponse(OkResponse):
    """``{"ok": true, "replaced_files": [...]}``."""

    replaced_files: list[str] = Field(
        default_factory=list,
        description=(
            "Share paths of the result files (FITS, thumbnail) of the slot's earlier "
            "stacks that this stack replaced; their rows are gone, so the worker deletes "
            "them from its result store. Empty for a repeated report."
        ),
    )


class NextJobResponse(BaseModel):
    """A claimed job (spec fields first, then the lease extension)."""

    job_id: int
    user_id: int
    upload_session_id: int
    chunk_key: str
    object_name: str | None
    frame_count: int
    session_ucloud_path: str = Field(
        description="Opaque session folder name (relative; the server's disk layout stays private)."
    )
    lease_token: str = Field(description="Extension: present it in heartbeat/complete/fail.")
    lease_expires_at: str = Field(description="Extension: ISO 8601 UTC.")
    lease_seconds: int = Field(description="Extension: lease length granted by each heartbeat.")
    attempt: int = Field(description="Extension: 1 for the first claim of this job.")
    kind: str = Field(
        default="stack",
        description="Extension: stack (raw frames) or postprocess (an uploaded stack).",
    )


class JobFileItem(BaseModel):
    """One raw file; string-typed values as in the spec example."""

    id: str
    filename: str
    ucloud_path: str
    file_size_bytes: str
    fits_date_obs: str | None = Field(description="'YYYY-MM-DD HH:MM:SS' UTC, as the original.")
    fits_date_obs_iso: str | None = Field(
        default=None, description="Extension: full-precision ISO 8601 UTC."
    )
    fits_exptime: str | None
    fits_ra: str | None
    fits_dec: str | None


class JobFilesResponse(BaseModel):
    """The raw files of a job."""

    job_id: int
    chunk_key: str
    files: list[JobFileItem]


class _WorkerIdentity(BaseModel):
    model_config = ConfigDict(extra="ignore")

    worker_id: WorkerId | None = Field(
        default=None, description="Extension: when given, a job held by another worker is refused."
    )
    lease_token: LeaseToken | None = Field(
        default=None, description="Extension: the claim's lease token."
    )


MAX_REJECTED_FRAMES = 10_000


class RejectedFrame(BaseModel):
    """A frame the stack left out, and the engine's reason."""

    filename: Annotated[str, Field(min_length=1, max_length=255), fields.LINE]
    reason: Annotated[str, Field(max_length=500), fields.LINE]


Magnitude = Annotated[float, Field(ge=-50, le=100, allow_inf_nan=False)]
SkyPoint = tuple[
    Annotated[float, Field(ge=0, le=360, allow_inf_nan=False)],
    Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)],
]
HealpixPixel = Annotated[int, Field(ge=0, lt=12 * 128 * 128)]
#: A stack's footprint touches a few NSIDE 128 pixels (an S50 field ~10); this bounds a
#: report, not the field of view of any telescope CrowdSky supports.
MAX_FOOTPRINT_PIXELS = 1024


class CompleteJobRequest(_WorkerIdentity):
    """Body of complete_job (the spec's fields; numbers may arrive as strings)."""

    job_id: JobId
    ucloud_path: PathText = Field(min_length=1)
    thumbnail_path: PathText | None = None
    n_frames_input: Count | None = None
    n_frames_aligned: Count | None = None
    total_exptime: (
        Annotated[float, Field(ge=0, le=MAX_TOTAL_EXPTIME_S, allow_inf_nan=False)] | None
    ) = None
    date_obs_start: datetime | None = None
    date_obs_end: datetime | None = None
    ra_deg: Annotated[float, Field(ge=0, le=360, allow_inf_nan=False)] | None = None
    dec_deg: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    file_size_bytes: Annotated[int, Field(ge=0, lt=2**62)] = 0
    n_stars_detected: Count | None = None
    rejected_frames: list[RejectedFrame] | None = Field(
        None,
        max_length=MAX_REJECTED_FRAMES,
        description="Frames the stack left out, with reasons (a CrowdSky extension).",
    )
    # Extension: the worker's plate solution and calibration (all optional; a worker
    # that does not solve sends none of them).
    plate_solved: bool | None = None
    solve_message: Annotated[str, Field(max_length=2000)] | None = None
    wcs_ra_deg: Annotated[float, Field(ge=0, le=360, allow_inf_nan=False)] | None = None
    wcs_dec_deg: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    wcs_healpix: Annotated[int, Field(ge=0, lt=12 * 128 * 128)] | None = None
    wcs_scale_arcsec: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] | None = None
    wcs_rotation_deg: Annotated[float, Field(ge=0, le=360, allow_inf_nan=False)] | None = None
    wcs_rms_arcsec: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] | None = None
    wcs_n_matched: Count | None = None
    wcs_corners: list[SkyPoint] | None = Field(
        None, min_length=4, max_length=4, description="(RA, Dec) of the image's outer corners"
    )
    wcs_healpix_pixels: list[HealpixPixel] | None = Field(
        None,
        min_length=1,
        max_length=MAX_FOOTPRINT_PIXELS,
        description="NSIDE 128 RING pixels the footprint touches",
    )
    phot_zp_r: Magnitude | None = None
    phot_zp_g: Magnitude | None = None
    phot_zp_b: Magnitude | None = None
    phot_zp_scatter: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    phot_n_stars: Count | None = None
    phot_limit_mag: Magnitude | None = None
    phot_sqm: Magnitude | None = None

    def plate_solve_report(self) -> PlateSolveReport | None:
        """The astrometry extension as a queue record (None when the worker sent none)."""
        if self.plate_solved is None:
            return None
        values = {name: getattr(self, name) for name in PlateSolveReport.__slots__}
        for name in ("wcs_corners", "wcs_healpix_pixels"):  # JSON text on the stack row
            if values[name] is not None:
                values[name] = json.dumps(values[name], separators=(",", ":"))
        if values["solve_message"] is not None:
            values["solve_message"] = values["solve_message"][:255]
        return PlateSolveReport(**values)

    @field_validator("date_obs_start", "date_obs_end")
    @classmethod
    def _as_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # the original worker sends naive UTC
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 9999-12-31T23:59:59-12:00 is past year 9999 in UTC
            raise ValueError("is outside the supported date range once converted to UTC") from None

    @model_validator(mode="after")
    def _consistent(self) -> CompleteJobRequest:
        if (
            self.n_frames_input is not None
            and self.n_frames_aligned is not None
            and self.n_frames_aligned > self.n_frames_input
        ):
            raise ValueError("n_frames_aligned cannot exceed n_frames_input")
        if self.date_obs_start and self.date_obs_end and self.date_obs_end < self.date_obs_start:
            raise ValueError("date_obs_end is before date_obs_start")
        return self


class FailJobRequest(_WorkerIdentity):
    """Body of fail_job."""

    job_id: JobId
    error_message: Annotated[str, fields.TEXT] | None = Field(
        default=None, description="Stored, truncated to 4000 chars."
    )


class FailJobResponse(BaseModel):
    """``{"ok": true, "status": "retry" | "failed"}``."""

    ok: Literal[True] = True
    status: Literal["retry", "failed"]


class ReleaseJobRequest(_WorkerIdentity):
    """Extension: hand a held job back (worker shutting down) without a failed attempt."""

    job_id: JobId
    reason: Annotated[str, Field(max_length=4000), fields.TEXT] | None = None


class ReleaseJobResponse(BaseModel):
    """``{"ok": true, "status": "pending" | "retry"}``."""

    ok: Literal[True] = True
    status: Literal["pending", "retry"]


class HeartbeatRequest(_WorkerIdentity):
    """Extension: renew the lease of a held job and report progress."""

    job_id: JobId
    progress: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    message: Annotated[str, Field(max_length=255), fields.TEXT] | None = None


class HeartbeatResponse(BaseModel):
    """The renewed lease."""

    ok: Literal[True] = True
    lease_expires_at: str


class ResultUploadRequest(_WorkerIdentity):
    """Extension: ask for presigned PUT URLs for a held job's result files."""

    job_id: JobId


class ResultUploadItem(BaseModel):
    """One result file: its path (report it as ``ucloud_path`` / ``thumbnail_path``) and
    the URL that accepts one PUT of it."""

    kind: Literal["fits", "thumbnail", "stars"]
    path: str
    url: str


class ResultUploadResponse(BaseModel):
    """The job's result files, each with a presigned PUT URL valid ``expires_in`` seconds."""

    job_id: int
    expires_in: int
    files: list[ResultUploadItem]
