"""Worker settings: every variable a worker process reads, validated once at start-up.

The names are the original worker's (``worker-reference.md``), so an existing worker
``.env`` keeps working; the rebuild's additions are optional. docs/configuration.md
lists them all (generated from :class:`WorkerSettings`). Settings are built by
:func:`load_worker_settings` at the entry point and passed down; no other worker
module reads the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from crowdsky.storage.webdav_share import token_in_share_url
from crowdsky.worker.errors import ConfigError

DEFAULT_BASE_PATH = "/crowdsky"
DEFAULT_WORKER_ID = "worker-01"
DEFAULT_POLL_INTERVAL_SECONDS = 30.0
DEFAULT_WORK_DIR = Path("./tmp")
DEFAULT_MAX_WORKERS = 4
DEFAULT_LOCAL_RESULTS_DIR = Path("./crowdsky-data/results")
DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 120.0
DEFAULT_DOWNLOAD_CONCURRENCY = 4

ResultStoreKind = Literal["webdav", "local", "presigned"]


def _env(name: str) -> Any:
    """A field alias that reads ``NAME`` from the environment and accepts ``name`` in code."""
    return AliasChoices(name, name.lower())


class WorkerSettings(BaseSettings):
    """Configuration of one worker process (see the module docstring for every variable)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    api_base_url: str = Field(
        validation_alias=_env("API_BASE_URL"),
        description="The server's worker API, ending in /api (no trailing slash).",
    )
    worker_api_key: SecretStr = Field(
        validation_alias=_env("WORKER_API_KEY"),
        description=(
            "The shared worker key, or a per-worker token from `crowdsky worker-token create`."
        ),
    )
    ucloud_webdav_url: str | None = Field(
        default=None,
        validation_alias=_env("UCLOUD_WEBDAV_URL"),
        description=(
            "Nextcloud share endpoint: .../public.php/webdav (legacy) or "
            ".../public.php/dav/files/<token>; unset for a local result store."
        ),
    )
    ucloud_share_token: SecretStr | None = Field(
        default=None,
        validation_alias=_env("UCLOUD_SHARE_TOKEN"),
        description=(
            "The public share's token (the part after /s/ in the link); Basic user name on "
            "the legacy endpoint."
        ),
    )
    ucloud_share_password: SecretStr | None = Field(
        default=None,
        validation_alias=_env("UCLOUD_SHARE_PASSWORD"),
        description="Password of a password-protected share (empty for none).",
    )
    ucloud_base_path: str = Field(
        default=DEFAULT_BASE_PATH,
        validation_alias=_env("UCLOUD_BASE_PATH"),
        description="Folder inside the share under which stacks/user_<id>/... is written.",
    )
    worker_id: str = Field(
        default=DEFAULT_WORKER_ID,
        min_length=1,
        max_length=64,
        validation_alias=_env("WORKER_ID"),
        description="This worker's name, recorded on the jobs it claims.",
    )
    poll_interval: float = Field(
        default=DEFAULT_POLL_INTERVAL_SECONDS,
        gt=0,
        validation_alias=_env("POLL_INTERVAL"),
        description="Seconds between polls for work while idle.",
    )
    work_dir: Path = Field(
        default=DEFAULT_WORK_DIR,
        validation_alias=_env("WORK_DIR"),
        description="Scratch folder for downloads and stacks (made absolute at start-up).",
    )
    max_workers: int = Field(
        default=DEFAULT_MAX_WORKERS,
        ge=1,
        le=64,
        validation_alias=_env("MAX_WORKERS"),
        description="Jobs processed in parallel (daemon mode).",
    )
    result_store: ResultStoreKind | None = Field(
        default=None,
        validation_alias=_env("RESULT_STORE"),
        description=(
            "webdav, local or presigned (PUT to URLs the server signs per job); "
            "default: webdav when UCLOUD_WEBDAV_URL is set, else local."
        ),
    )
    local_results_dir: Path = Field(
        default=DEFAULT_LOCAL_RESULTS_DIR,
        validation_alias=_env("LOCAL_RESULTS_DIR"),
        description="Root of the local result store (stands for the share's root).",
    )
    shutdown_timeout: float = Field(
        default=DEFAULT_SHUTDOWN_TIMEOUT_SECONDS,
        ge=0,
        validation_alias=_env("SHUTDOWN_TIMEOUT"),
        description="Seconds running jobs get to finish after SIGTERM before they are handed back.",
    )
    download_concurrency: int = Field(
        default=DEFAULT_DOWNLOAD_CONCURRENCY,
        ge=1,
        le=32,
        validation_alias=_env("DOWNLOAD_CONCURRENCY"),
        description="Parallel raw-file downloads per job.",
    )
    heartbeat_interval: float | None = Field(
        default=None,
        gt=0,
        validation_alias=_env("HEARTBEAT_INTERVAL"),
        description=(
            "Seconds between lease heartbeats; default: a third of the server's lease, at most 60."
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        validation_alias=_env("LOG_LEVEL"),
        description="DEBUG, INFO, WARNING or ERROR.",
    )

    @field_validator("api_base_url")
    @classmethod
    def _check_api_url(cls, value: str) -> str:
        return _check_http_url(value).rstrip("/")

    @field_validator("ucloud_webdav_url")
    @classmethod
    def _check_webdav_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return _check_http_url(value).rstrip("/")

    @field_validator("ucloud_share_token", "ucloud_share_password", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # "UCLOUD_SHARE_TOKEN=" in a .env means "not set" (e.g. the token is in the URL).
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("worker_api_key")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("ucloud_base_path")
    @classmethod
    def _check_base_path(cls, value: str) -> str:
        parts = [p for p in value.replace("\\", "/").split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError("must not contain '.' or '..' segments")
        return "/" + "/".join(parts)

    @field_validator("worker_id")
    @classmethod
    def _check_worker_id(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c.isspace() or not c.isprintable() for c in value):
            raise ValueError("must be a non-empty name without spaces")
        return value

    @field_validator("work_dir", "local_results_dir")
    @classmethod
    def _make_absolute(cls, value: Path) -> Path:
        # systemd starts services in /, so a relative folder would move with the unit:
        # resolve it once, against the directory the worker was started from.
        return value.expanduser().resolve()

    @field_validator("result_store", mode="before")
    @classmethod
    def _blank_store_is_default(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            return value or None
        return value

    @property
    def store_kind(self) -> ResultStoreKind:
        """Where results go: ``RESULT_STORE`` if set, else WebDAV when a share URL is set."""
        if self.result_store is not None:
            return self.result_store
        return "webdav" if self.ucloud_webdav_url else "local"


def _check_http_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("must not contain a query string or fragment")
    return value


def _field_env_name(loc: tuple[int | str, ...]) -> str:
    name = str(loc[0]) if loc else "?"
    return name.upper()


def load_worker_settings(env_file: Path | str | None = ".env", **overrides: Any) -> WorkerSettings:
    """Build and validate the worker settings from ``.env``, the environment and overrides.

    Parameters
    ----------
    env_file
        The dotenv file to read (missing files are ignored); ``None`` reads only the
        environment. Environment variables take precedence over the file.
    **overrides
        Values that win over both, keyed by field name (``worker_id=...``); command-line
        options use this. ``None`` values are ignored.

    Returns
    -------
    WorkerSettings

    Raises
    ------
    ConfigError
        One message naming every missing or invalid variable, e.g.
        ``WORKER_API_KEY is missing``.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = WorkerSettings(_env_file=env_file, **given)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = _field_env_name(err["loc"])
            if err["type"] == "missing":
                problems.append(f"{name} is missing (set it in .env or the environment)")
            else:
                msg = str(err["msg"]).removeprefix("Value error, ")
                problems.append(f"{name} is invalid: {msg}")
        raise ConfigError("Invalid worker configuration: " + "; ".join(problems)) from exc
    _check_store_settings(settings)
    return settings


def _check_store_settings(settings: WorkerSettings) -> None:
    if settings.store_kind != "webdav":
        return
    if not settings.ucloud_webdav_url:
        raise ConfigError(
            "Invalid worker configuration: UCLOUD_WEBDAV_URL is missing "
            "(required when RESULT_STORE=webdav)"
        )
    if settings.ucloud_share_token is None and not token_in_share_url(settings.ucloud_webdav_url):
        raise ConfigError(
            "Invalid worker configuration: UCLOUD_SHARE_TOKEN is missing "
            "(required for the WebDAV result store unless the token is part of "
            "UCLOUD_WEBDAV_URL, as in .../public.php/dav/files/<token>)"
        )


def redact_share_url(url: str | None) -> str | None:
    """The share URL with a path-embedded token replaced by ``<token>`` (safe to log)."""
    if url is None:
        return None
    token = token_in_share_url(url)
    return url.replace(token, "<token>") if token else url


def describe(settings: WorkerSettings) -> Mapping[str, object]:
    """The settings as a log-safe mapping (secrets are never included)."""
    return {
        "api_base_url": settings.api_base_url,
        "worker_id": settings.worker_id,
        "result_store": settings.store_kind,
        "webdav_url": (
            redact_share_url(settings.ucloud_webdav_url)
            if settings.store_kind == "webdav"
            else None
        ),
        "base_path": settings.ucloud_base_path,
        "work_dir": str(settings.work_dir),
        "max_workers": settings.max_workers,
        "poll_interval": settings.poll_interval,
    }
