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
DEFAULT_CLAIM_CONCURRENCY = 4


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
    min_chunk_frames: int = Field(
        default=DEFAULT_MIN_CHUNK_FRAMES,
        ge=1,
        validation_alias=AliasChoices("CROWDSKY_MIN_CHUNK_FRAMES", "min_chunk_frames"),
        description="Chunks with fewer frames get no job and are reported as skipped.",
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
