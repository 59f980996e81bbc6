"""SQLAlchemy tables: the original system's five, plus what the queue and accounts need.

The original's tables keep their names and meanings (``users``, ``upload_sessions``,
``raw_files``, ``stacking_jobs``, ``stacked_frames``). Times are timezone-aware UTC;
paths are relative to the data dir; a raw file points at its job; a job carries its
lease, backoff and attempts (``job_attempts`` keeps each error); ``stacked_frames``
has one row per job, which makes completion idempotent; API keys and worker tokens
are stored as hashes in their own tables. ORM rows never leave ``db``, ``queue``,
``ingest`` and ``accounts``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crowdsky.db.types import DOUBLE, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a deterministic constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """A CrowdSky account."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: New stacks of this user are private (kept out of the data API and coverage).
    stacks_private: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ApiKey(Base):
    """A named per-user API key; only its SHA-256 is stored."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WorkerToken(Base):
    """A per-worker API token; only its SHA-256 is stored."""

    __tablename__ = "worker_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Telescope(Base):
    """One telescope of one user, named by its FITS ``TELESCOP``: the ``telescope_id``
    that the app and the bot filter stacks by."""

    __tablename__ = "telescopes"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UploadSession(Base):
    """One upload batch: files arrive, then finalize turns them into jobs."""

    __tablename__ = "upload_sessions"
    __table_args__ = (Index(None, "user_id", "status"), Index(None, "status", "last_activity_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    session_token: Mapped[str] = mapped_column(String(64), unique=True)
    object_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    ra_deg: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    dec_deg: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    total_size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # uploading -> complete (finalize) | expired (cleanup); see ingest.session_states
    status: Mapped[str] = mapped_column(String(16), default="uploading")
    storage_path: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RawFile(Base):
    """One uploaded raw sub-frame and what its FITS header says."""

    __tablename__ = "raw_files"
    __table_args__ = (
        UniqueConstraint("upload_session_id", "sha256"),
        Index(None, "upload_session_id", "chunk_key"),
        Index(None, "stacking_job_id"),
        Index(None, "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upload_session_id: Mapped[int] = mapped_column(
        ForeignKey("upload_sessions.id", ondelete="CASCADE")
    )
    stacking_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("stacking_jobs.id", ondelete="SET NULL"), nullable=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    storage_path: Mapped[str] = mapped_column(String(512))
    file_size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    fits_date_obs: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    fits_object: Mapped[str | None] = mapped_column(String(255), nullable=True)
    fits_exptime: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    fits_ra: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    fits_dec: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    fits_filter: Mapped[str | None] = mapped_column(String(32), nullable=True)
    fits_telescop: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fits_instrume: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fits_gain: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    fits_ccd_temp: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    fits_bayerpat: Mapped[str | None] = mapped_column(String(8), nullable=True)
    fits_eqmode: Mapped[int | None] = mapped_column(Integer, nullable=True)
    fits_sitelat: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    fits_sitelong: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    image_width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    image_height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chunk_key: Mapped[str | None] = mapped_column(String(32), nullable=True)
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    # set by cleanup when the file is missing on disk (reported, never stacked)
    lost_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StackingJob(Base):
    """A unit of work: stack one chunk of one upload session. Status moves only in queue."""

    __tablename__ = "stacking_jobs"
    __table_args__ = (
        Index(None, "status", "created_at", "id"),
        Index(None, "status", "lease_expires_at"),
        Index(None, "upload_session_id"),
        Index(None, "user_id", "slot"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    upload_session_id: Mapped[int] = mapped_column(
        ForeignKey("upload_sessions.id", ondelete="CASCADE")
    )
    chunk_key: Mapped[str] = mapped_column(String(32))
    #: ``YYYYMMDD.CC`` UTC slot of a stacking job (NULL for post-processing jobs).
    slot: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: The chunk's mean pointing: with the slot, telescope, filter and exposure, the
    #: identity of the slot's one stack (``ingest.slots``).
    ra_deg: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    dec_deg: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    #: The slot's earlier job, whose stack this job's stack replaces on completion.
    replaces_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("stacking_jobs.id", ondelete="SET NULL"), nullable=True
    )
    #: Not claimable until this job is done (it was processing when this one was queued).
    waits_for_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("stacking_jobs.id", ondelete="SET NULL"), nullable=True
    )
    #: ``stack`` (raw frames to stack) or ``postprocess`` (a stack uploaded ready-made).
    kind: Mapped[str] = mapped_column(String(16), default="stack", server_default="stack")
    object_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    telescope: Mapped[str | None] = mapped_column(String(64), nullable=True)
    filter_name: Mapped[str | None] = mapped_column(String(32), nullable=True)
    exptime: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    frame_count: Mapped[int] = mapped_column(Integer, default=0)
    # pending -> processing -> completed | retry -> processing ... | failed; see queue.states
    status: Mapped[str] = mapped_column(String(16), default="pending")
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # name of the per-worker token that claimed the job; NULL for the shared key
    holder_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    progress: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    progress_message: Mapped[str | None] = mapped_column(String(255), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class JobAttempt(Base):
    """One claim of a job and how it ended: the error history the original overwrote."""

    __tablename__ = "job_attempts"
    __table_args__ = (UniqueConstraint("stacking_job_id", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stacking_job_id: Mapped[int] = mapped_column(ForeignKey("stacking_jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # completed | failed | lease_expired
    outcome: Mapped[str] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)


class StackedFrame(Base):
    """The result of one completed job: where the stack is and what it contains."""

    __tablename__ = "stacked_frames"
    __table_args__ = (
        Index(None, "user_id", "object_name"),
        Index(None, "user_id", "date_obs_start"),
        Index(None, "user_id", "chunk_key"),
        Index(None, "user_id", "created_at"),
        # the data API's tile query: one pixel, ordered by observation time
        Index(None, "healpix", "date_obs_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stacking_job_id: Mapped[int] = mapped_column(
        ForeignKey("stacking_jobs.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    object_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    chunk_key: Mapped[str] = mapped_column(String(32))
    telescope: Mapped[str | None] = mapped_column(String(64), nullable=True)
    filter_name: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ucloud_path: Mapped[str] = mapped_column(String(512))
    thumbnail_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    n_frames_input: Mapped[int] = mapped_column(Integer)
    n_frames_aligned: Mapped[int] = mapped_column(Integer)
    total_exptime: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    date_obs_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    date_obs_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ra_deg: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    dec_deg: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    file_size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    n_stars_detected: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # JSON [[filename, reason], ...] of the frames the stack left out (NULL: none, or unknown)
    rejected_frames: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # client-facing facts of the later original server (``clients.md``)
    telescope_id: Mapped[int | None] = mapped_column(
        ForeignKey("telescopes.id", ondelete="SET NULL"), nullable=True
    )
    eq_mode: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sqm: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    #: NSIDE 128 RING pixel of (ra_deg, dec_deg), whatever the chunk key's format.
    healpix: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Private stacks never appear in the data API or the sky coverage.
    is_private: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: SITELAT/SITELONG were removed (``scrub_location=1``).
    location_scrubbed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # plate solution and photometric calibration (migration 0003_plate_solve; all None
    # when the worker had no solver or reported none)
    plate_solved: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    solve_message: Mapped[str | None] = mapped_column(String(255), nullable=True)
    wcs_ra_deg: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    wcs_dec_deg: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    wcs_healpix: Mapped[int | None] = mapped_column(Integer, nullable=True)
    wcs_scale_arcsec: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    wcs_rotation_deg: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    wcs_rms_arcsec: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    wcs_n_matched: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: JSON ``[[ra, dec], ...]`` of the image's four outer corners (degrees).
    wcs_corners: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: JSON ``[pixel, ...]``: the NSIDE 128 RING pixels the footprint touches.
    wcs_healpix_pixels: Mapped[str | None] = mapped_column(Text, nullable=True)
    phot_zp_r: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    phot_zp_g: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    phot_zp_b: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    phot_zp_scatter: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    phot_n_stars: Mapped[int | None] = mapped_column(Integer, nullable=True)
    phot_limit_mag: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)
    phot_sqm: Mapped[float | None] = mapped_column(DOUBLE, nullable=True)


class SkyCoverageCell(Base):
    """What the published stacks cover in one (tile, filter): the sky coverage's rows,
    kept by :mod:`crowdsky.stacks.coverage` in the transaction that changes a stack."""

    __tablename__ = "sky_coverage_cells"

    #: NSIDE 128 RING pixel.
    healpix: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: ``stacked_frames.filter_name``, ``''`` for none.
    filter_name: Mapped[str] = mapped_column(String(32), primary_key=True)
    n_stacks: Mapped[int] = mapped_column(Integer, default=0)
    total_exptime_s: Mapped[float] = mapped_column(DOUBLE, default=0.0)
    #: Distinct owners of those stacks.
    n_observers: Mapped[int] = mapped_column(Integer, default=0)
    first_obs: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_obs: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: The cell's line of the ECSV answer, written with the counts (NULL: render it).
    ecsv_row: Mapped[str | None] = mapped_column(Text, nullable=True)


class SlotLock(Base):
    """One row per user whose lock serialises the placing of that user's frames into
    slots (``ingest.slots.lock_user``). Nothing references it, so holding it never
    blocks the foreign-key checks of a completion, as a lock on ``users`` would."""

    __tablename__ = "slot_locks"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )


class UserPreferences(Base):
    """A user's web-app defaults (no row: all off); the privacy default is
    ``users.stacks_private``, which the completion reads."""

    __tablename__ = "user_preferences"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    scrub_location: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class LoginFailure(Base):
    """Failed-login counter of one throttle key (an account or a client address) in its
    current window, shared by every server process (see ``accounts.db_throttle``).

    ``key`` is the SHA-256 of the kind and the value, so long or odd logins make no
    long index entries; ``window_start`` is wall-clock epoch seconds (every host's
    clock, not a process's monotonic one), indexed so expired rows go in one range delete.
    """

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[float] = mapped_column(DOUBLE, index=True)
    failures: Mapped[int] = mapped_column(Integer)


class SigningKey(Base):
    """A key the deployment signs with (the web session cookies' key), created once and
    shared by every server process through the database (see ``accounts.signing_keys``).
    """

    __tablename__ = "signing_keys"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
