"""Server settings: every variable the server process reads, validated once at start-up.

Settings are built at the entry point (CLI command, test fixture) and passed down;
no module reads the environment on its own. Variable names keep the original
system's names where it had one (``WORKER_API_KEY``, ``UPLOAD_EXPIRY_HOURS``) so that
an existing deployment's environment keeps working.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("./crowdsky-data")
DEFAULT_LEASE_SECONDS = 600
DEFAULT_RETRY_BACKOFF_SECONDS = 30.0
DEFAULT_UPLOAD_EXPIRY_HOURS = 24.0
DEFAULT_MAX_UPLOAD_BYTES = 64 * 1024 * 1024
DEFAULT_MIN_CHUNK_FRAMES = 3
DEFAULT_FAILED_RAW_RETENTION_HOURS = 7 * 24.0
#: Frames of a stacked slot are kept this long, so that more frames of the slot
#: uploaded later are stacked together with them (one stack per slot).
DEFAULT_RESTACK_WINDOW_HOURS = 24.0
DEFAULT_CLAIM_CONCURRENCY = 4
DEFAULT_LOGIN_HASH_CONCURRENCY = 1
DEFAULT_LOGIN_FAILURES_PER_ACCOUNT = 10
DEFAULT_LOGIN_FAILURES_PER_ADDRESS = 30
DEFAULT_LOGIN_THROTTLE_SECONDS = 300.0


class SettingsError(Exception):
    """The configuration is invalid; the message names the variable and the problem."""


class ServerSettings(BaseSettings):
    """Configuration of the CrowdSky server (and of the admin commands that use its database)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CROWDSKY_DATABASE_URL", "database_url"),
        description="SQLAlchemy URL; default: SQLite file crowdsky.sqlite3 in the data dir.",
    )
    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR,
        validation_alias=AliasChoices("CROWDSKY_DATA_DIR", "data_dir"),
        description="Folder for raw uploads, the embedded database and local results.",
    )
    worker_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("WORKER_API_KEY", "worker_api_key"),
        description="Shared Bearer key of the worker API (as in the original system).",
    )
    upload_expiry_hours: float = Field(
        default=DEFAULT_UPLOAD_EXPIRY_HOURS,
        gt=0,
        validation_alias=AliasChoices("UPLOAD_EXPIRY_HOURS", "upload_expiry_hours"),
        description="An upload session idle for this long is expired by cleanup.",
    )
    job_lease_seconds: int = Field(
        default=DEFAULT_LEASE_SECONDS,
        ge=1,
        validation_alias=AliasChoices("CROWDSKY_JOB_LEASE_SECONDS", "job_lease_seconds"),
        description="How long a claim holds a job without a heartbeat.",
    )
    retry_backoff_seconds: float = Field(
        default=DEFAULT_RETRY_BACKOFF_SECONDS,
        ge=0,
        validation_alias=AliasChoices("CROWDSKY_RETRY_BACKOFF_SECONDS", "retry_backoff_seconds"),
        description="Delay before a failed job may run again; doubles with each attempt.",
    )
    failed_raw_retention_hours: float = Field(
        default=DEFAULT_FAILED_RAW_RETENTION_HOURS,
        ge=0,
        validation_alias=AliasChoices(
            "CROWDSKY_FAILED_RAW_RETENTION_HOURS", "failed_raw_retention_hours"
        ),
        description="Raw files of terminally failed jobs are kept this long for inspection.",
    )
    restack_window_hours: float = Field(
        default=DEFAULT_RESTACK_WINDOW_HOURS,
        ge=0,
        validation_alias=AliasChoices("CROWDSKY_RESTACK_WINDOW_HOURS", "restack_window_hours"),
        description=(
            "Raw files of a completed stack are kept this long, so that frames of the same "
            "slot uploaded later are re-stacked with them into one stack (0: delete at once)."
        ),
    )
    cleanup_interval_seconds: float = Field(
        default=300.0,
        ge=0,
        validation_alias=AliasChoices(
            "CROWDSKY_CLEANUP_INTERVAL_SECONDS", "cleanup_interval_seconds"
        ),
        description="The server runs cleanup this often by itself (0 disables).",
    )
    claim_concurrency: int = Field(
        default=DEFAULT_CLAIM_CONCURRENCY,
        ge=1,
        le=256,
        validation_alias=AliasChoices("CROWDSKY_CLAIM_CONCURRENCY", "claim_concurrency"),
        description=(
            "Claims one server process runs at once; more wait their turn. Beyond a few "
            "per core, concurrent claims only contend for locks and CPU."
        ),
    )
    max_upload_bytes: int = Field(
        default=DEFAULT_MAX_UPLOAD_BYTES,
        gt=0,
        validation_alias=AliasChoices("CROWDSKY_MAX_UPLOAD_BYTES", "max_upload_bytes"),
        description="Largest accepted raw file.",
    )
    max_open_upload_sessions: int = Field(
        default=20,
        ge=1,
        validation_alias=AliasChoices(
            "CROWDSKY_MAX_OPEN_UPLOAD_SESSIONS", "max_open_upload_sessions"
        ),
        description=(
            "Open (not finalized, not idle-expired) upload sessions one user may hold; "
            "a further start is refused with 409."
        ),
    )
    min_chunk_frames: int = Field(
        default=DEFAULT_MIN_CHUNK_FRAMES,
        ge=1,
        validation_alias=AliasChoices("CROWDSKY_MIN_CHUNK_FRAMES", "min_chunk_frames"),
        description="Chunks with fewer frames get no job and are reported as skipped.",
    )
    allow_shared_worker_key: bool = Field(
        default=True,
        validation_alias=AliasChoices(
            "CROWDSKY_ALLOW_SHARED_WORKER_KEY", "allow_shared_worker_key"
        ),
        description=(
            "Accept the shared WORKER_API_KEY (the original's protocol). Set false on a "
            "public deployment so that only per-worker tokens, each bound to the job it "
            "holds, reach the worker API."
        ),
    )
    login_hash_concurrency: int = Field(
        default=DEFAULT_LOGIN_HASH_CONCURRENCY,
        ge=1,
        le=64,
        validation_alias=AliasChoices("CROWDSKY_LOGIN_HASH_CONCURRENCY", "login_hash_concurrency"),
        description=(
            "Password (argon2, 64 MiB each) verifications run at once; the rest wait, "
            "and beyond a short queue get 429."
        ),
    )
    login_failures_per_account: int = Field(
        default=DEFAULT_LOGIN_FAILURES_PER_ACCOUNT,
        ge=1,
        validation_alias=AliasChoices(
            "CROWDSKY_LOGIN_FAILURES_PER_ACCOUNT", "login_failures_per_account"
        ),
        description="Wrong passwords for one login name before it is throttled (429).",
    )
    login_failures_per_address: int = Field(
        default=DEFAULT_LOGIN_FAILURES_PER_ADDRESS,
        ge=1,
        validation_alias=AliasChoices(
            "CROWDSKY_LOGIN_FAILURES_PER_ADDRESS", "login_failures_per_address"
        ),
        description="Wrong passwords from one client address before it is throttled (429).",
    )
    login_throttle_seconds: float = Field(
        default=DEFAULT_LOGIN_THROTTLE_SECONDS,
        gt=0,
        validation_alias=AliasChoices("CROWDSKY_LOGIN_THROTTLE_SECONDS", "login_throttle_seconds"),
        description="Window in which failures are counted, and how long a throttle lasts.",
    )
    login_throttle: Literal["database", "memory"] = Field(
        default="database",
        validation_alias=AliasChoices("CROWDSKY_LOGIN_THROTTLE", "login_throttle"),
        description=(
            "Where login attempts are counted: database (default; one limit shared by "
            "every server process) or memory (per process: a single server only)."
        ),
    )
    chunk_key_format: Literal["classic", "healpix"] = Field(
        default="healpix",
        validation_alias=AliasChoices("CHUNK_KEY_FORMAT", "chunk_key_format"),
        description="healpix (default): YYYYMMDD.CC_HPnnnnnn; classic: YYYYMMDD.CC_RA_±DEC.",
    )

    results_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("CROWDSKY_RESULTS_DIR", "results_dir"),
        description=(
            "Root of the local result store that download_stack, thumbnail and the data "
            "API serve stacks from (a worker's LOCAL_RESULTS_DIR); default: "
            "<data dir>/results."
        ),
    )
    data_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CROWDSKY_DATA_API_KEY", "data_api_key"),
        description="Shared service key of the data API (Bearer), beside users' own API keys.",
    )

    # -- object store (issue 18): raws and results on S3 --------------------------------
    # Credentials are read from the standard AWS variables (or left to boto3's own chain:
    # AWS_PROFILE, ~/.aws/credentials, AWS_SHARED_CREDENTIALS_FILE); never in the repo.
    raw_store: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CROWDSKY_RAW_STORE", "raw_store"),
        description="s3://bucket/prefix: raw uploads in an object store; default: the data dir.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "CROWDSKY_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "s3_endpoint_url"
        ),
        description="S3 endpoint (SeaweedFS, MinIO, Ceph...); default: AWS.",
    )
    s3_region: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_DEFAULT_REGION", "AWS_REGION", "s3_region"),
        description="Region the S3 requests are signed for; default: boto3's.",
    )
    s3_access_key_id: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ACCESS_KEY_ID", "s3_access_key_id"),
        description="S3 access key; unset: boto3's chain (AWS_PROFILE, credentials file).",
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY", "s3_secret_access_key"),
        description="S3 secret key (with AWS_ACCESS_KEY_ID).",
    )
    s3_session_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_SESSION_TOKEN", "s3_session_token"),
        description="Temporary S3 credentials' session token.",
    )
    s3_presign_seconds: int = Field(
        default=300,
        ge=10,
        le=7 * 24 * 3600,
        validation_alias=AliasChoices("CROWDSKY_S3_PRESIGN_SECONDS", "s3_presign_seconds"),
        description="Lifetime of the presigned URLs handed to workers (raw GETs, result PUTs).",
    )
    s3_redirect_downloads: bool = Field(
        default=True,
        validation_alias=AliasChoices("CROWDSKY_S3_REDIRECT_DOWNLOADS", "s3_redirect_downloads"),
        description="download_raw redirects workers to the store (off: the server proxies).",
    )

    result_store: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CROWDSKY_RESULT_STORE", "result_store"),
        description=(
            "Where finished stacks live: local (CROWDSKY_RESULTS_DIR, the default), webdav "
            "(the workers' share, UCLOUD_WEBDAV_URL) or s3://bucket/prefix (workers may "
            "publish there by presigned PUT, result_upload_urls, and completions are "
            "checked against it). Downloads read from it."
        ),
    )
    results_webdav_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "CROWDSKY_RESULTS_WEBDAV_URL", "UCLOUD_WEBDAV_URL", "results_webdav_url"
        ),
        description="The workers' WebDAV share, read when CROWDSKY_RESULT_STORE=webdav.",
    )
    results_share_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("UCLOUD_SHARE_TOKEN", "results_share_token"),
        description="Token of that share (unless the URL holds it).",
    )
    results_share_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("UCLOUD_SHARE_PASSWORD", "results_share_password"),
        description="Password of that share (empty for none).",
    )
    s3_redirect_results: bool = Field(
        default=True,
        validation_alias=AliasChoices("CROWDSKY_S3_REDIRECT_RESULTS", "s3_redirect_results"),
        description=(
            "download_stack and download_frame answer 307 to a presigned GET of an S3 "
            "result store (off: the server relays the bytes)."
        ),
    )

    @field_validator("result_store")
    @classmethod
    def _check_result_store(cls, value: str | None) -> str | None:
        text = (value or "").strip()
        if text.lower() in ("", "local"):
            return None
        if text.lower() == "webdav":
            return "webdav"
        if not text.startswith("s3://") or len(text) <= len("s3://"):
            raise ValueError("must be local, webdav or s3://bucket[/prefix]")
        return text

    @field_validator("results_share_token", "results_share_password", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("raw_store")
    @classmethod
    def _check_s3_store(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith("s3://") or len(value) <= len("s3://"):
            raise ValueError("must be empty (the default) or s3://bucket[/prefix]")
        return value

    # -- end of the object-store block ----------------------------------------------------

    @field_validator("chunk_key_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to an SQLite file inside the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'crowdsky.sqlite3').resolve()}"

    @property
    def resolved_results_dir(self) -> Path:
        """Where finished stacks are read from: ``results_dir`` or ``<data dir>/results``."""
        return self.results_dir if self.results_dir is not None else self.data_dir / "results"

    @property
    def uploads_dir(self) -> Path:
        """Root of the raw-frame buffer: ``<data dir>/uploads``."""
        return self.data_dir / "uploads"


def load_server_settings(**overrides: object) -> ServerSettings:
    """Build settings from the environment and ``.env``, with explicit overrides on top.

    Raises
    ------
    SettingsError
        When a variable is invalid; the message names it.
    """
    try:
        return ServerSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from exc


def describe_validation_error(exc: ValidationError) -> str:
    """Turn a pydantic validation error into one line per bad variable."""
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error.get("loc", ())) or "settings"
        lines.append(f"{name}: {error.get('msg', 'invalid value')}")
    return "invalid configuration: " + "; ".join(lines)
