"""The CrowdSky worker: claims stacking jobs over HTTP, stacks them, publishes the results.

Importing this package loads only the light modules; the stacking engine is
imported when the first job is stacked.
"""

from __future__ import annotations

from crowdsky.worker.api_client import ApiClient, JobPayload
from crowdsky.worker.config import WorkerSettings, load_worker_settings
from crowdsky.worker.errors import (
    ApiAuthError,
    ApiError,
    ApiUnavailable,
    ConfigError,
    DownloadError,
    JobAborted,
    LeaseLost,
    StackingFailed,
    StorageAuthError,
    StorageError,
    WorkerError,
)
from crowdsky.worker.job_control import JobControl, JobOutcome
from crowdsky.worker.job_processor import JobProcessor, process_job
from crowdsky.worker.main import Worker, run
from crowdsky.worker.webdav import WebDavClient

__all__ = [
    "ApiAuthError",
    "ApiClient",
    "ApiError",
    "ApiUnavailable",
    "ConfigError",
    "DownloadError",
    "JobAborted",
    "JobControl",
    "JobOutcome",
    "JobPayload",
    "JobProcessor",
    "LeaseLost",
    "StackingFailed",
    "StorageAuthError",
    "StorageError",
    "WebDavClient",
    "Worker",
    "WorkerError",
    "WorkerSettings",
    "load_worker_settings",
    "process_job",
    "run",
]
