"""Frozen records the queue hands out: ORM rows never leave the core."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from crowdsky.queue.states import JobStatus

if TYPE_CHECKING:  # the queue reports freed files; it never imports storage
    from crowdsky.retention import FreedFiles


@dataclass(frozen=True, slots=True)
class WorkerCaller:
    """The credential behind a worker-API call, for the holder check of job-scoped calls.

    ``token_name`` is the per-worker token's name, or None for the shared key. A job
    claimed with a per-worker token answers only that token; a job claimed with the
    shared key answers only the shared key.
    """

    token_name: str | None


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to enqueue: one chunk of one upload session and its raw files."""

    user_id: int
    upload_session_id: int
    chunk_key: str
    raw_file_ids: tuple[int, ...]
    object_name: str | None = None
    telescope: str | None = None
    filter_name: str | None = None
    exptime: float | None = None
    #: ``stack`` (raw frames) or ``postprocess`` (one stack uploaded ready-made).
    kind: str = "stack"
    #: The slot's identity (``ingest.slots``): UTC slot ``YYYYMMDD.CC`` and mean pointing.
    slot: str | None = None
    ra_deg: float | None = None
    dec_deg: float | None = None
    #: The slot's earlier job, whose stack this job's stack replaces on completion.
    replaces_job_id: int | None = None
    #: A job being processed: this one is not claimable until that one is done.
    waits_for_job_id: int | None = None


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """What a worker receives when it claims a job."""

    job_id: int
    user_id: int
    upload_session_id: int
    chunk_key: str
    object_name: str | None
    frame_count: int
    session_path: str
    worker_id: str
    lease_token: str
    lease_expires_at: datetime
    lease_seconds: int
    attempt: int
    kind: str = "stack"


@dataclass(frozen=True, slots=True)
class JobFileEntry:
    """One raw file of a job, as listed for the worker."""

    id: int
    filename: str
    storage_path: str
    file_size_bytes: int
    date_obs: datetime | None
    exptime: float | None
    ra_deg: float | None
    dec_deg: float | None


@dataclass(frozen=True, slots=True)
class JobFiles:
    """The raw files a job needs."""

    job_id: int
    chunk_key: str
    files: tuple[JobFileEntry, ...]


@dataclass(frozen=True, slots=True)
class HeldJob:
    """A job being processed, as its holder may name its results."""

    job_id: int
    user_id: int
    object_name: str | None
    chunk_key: str


@dataclass(frozen=True, slots=True)
class RawFileLocation:
    """Where a downloadable raw file lives (relative to the uploads dir)."""

    id: int
    filename: str
    storage_path: str
    file_size_bytes: int


@dataclass(frozen=True, slots=True)
class PlateSolveReport:
    """A worker's plate solution and photometric calibration of a stack (an extension
    of complete_job; the field names are the ``stacked_frames`` columns)."""

    plate_solved: bool
    solve_message: str | None = None
    wcs_ra_deg: float | None = None
    wcs_dec_deg: float | None = None
    wcs_healpix: int | None = None
    wcs_scale_arcsec: float | None = None
    wcs_rotation_deg: float | None = None
    wcs_rms_arcsec: float | None = None
    wcs_n_matched: int | None = None
    wcs_corners: str | None = None  # JSON [[ra, dec], ...]
    wcs_healpix_pixels: str | None = None  # JSON [pixel, ...]
    phot_zp_r: float | None = None
    phot_zp_g: float | None = None
    phot_zp_b: float | None = None
    phot_zp_scatter: float | None = None
    phot_n_stars: int | None = None
    phot_limit_mag: float | None = None
    phot_sqm: float | None = None

    def columns(self) -> dict[str, object]:
        """Column name → value for the ``stacked_frames`` row."""
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """How far a worker says it got with a job (a heartbeat); either part may be absent."""

    fraction: float | None = None
    """0..1 (clamped when stored)."""
    message: str | None = None
    """Free text, cut to 255 characters when stored."""


@dataclass(frozen=True, slots=True)
class Completion:
    """A worker's report of a finished stack (the spec's complete_job body)."""

    job_id: int
    ucloud_path: str
    thumbnail_path: str | None = None
    n_frames_input: int | None = None
    n_frames_aligned: int | None = None
    total_exptime: float | None = None
    date_obs_start: datetime | None = None
    date_obs_end: datetime | None = None
    ra_deg: float | None = None
    dec_deg: float | None = None
    file_size_bytes: int = 0
    n_stars_detected: int | None = None
    rejected_frames: tuple[tuple[str, str], ...] = ()
    """``(filename, reason)`` of each frame the stack left out (an extension of the spec)."""
    astrometry: PlateSolveReport | None = None


@dataclass(frozen=True, slots=True)
class CompletionOutcome:
    """Result of complete_job; ``repeated`` is True for an identical repeat."""

    job_id: int
    stacked_frame_id: int
    repeated: bool
    freed: FreedFiles | None = None
    """Raw files the completion made unneeded; the caller deletes them after the
    commit (:func:`crowdsky.retention.delete_freed`). None for a repeat."""
    replaced_results: tuple[str, ...] = ()
    """Result files (FITS, thumbnail) of the slot's earlier stacks, whose rows this
    completion deleted; the caller deletes the files after the commit."""


@dataclass(frozen=True, slots=True)
class FailureOutcome:
    """Result of fail_job or of a reaped lease."""

    job_id: int
    status: JobStatus
    failed_attempts: int
    not_before: datetime | None


@dataclass(frozen=True, slots=True)
class ReleaseOutcome:
    """Result of release_job: the status the job went back to."""

    job_id: int
    status: JobStatus


@dataclass(frozen=True, slots=True)
class LeaseRenewal:
    """Result of a heartbeat."""

    job_id: int
    lease_expires_at: datetime
