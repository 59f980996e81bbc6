"""The CrowdSky worker: claims stacking jobs over HTTP, stacks them, publishes the results.

Importing this package loads nothing but this file: each public name is imported from
its module when first used (PEP 562 ``__getattr__``), so ``crowdsky stack`` and other
commands that only need ``crowdsky.worker.options`` do not pay ~0.25 s for the
worker's HTTP client, settings and job code. The stacking engine is imported when the
first job is stacked.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_MODULE_OF = {
    "ApiClient": "crowdsky.worker.api_client",
    "JobPayload": "crowdsky.worker.api_client",
    "WorkerSettings": "crowdsky.worker.config",
    "load_worker_settings": "crowdsky.worker.config",
    "ApiAuthError": "crowdsky.worker.errors",
    "ApiError": "crowdsky.worker.errors",
    "ApiUnavailable": "crowdsky.worker.errors",
    "ConfigError": "crowdsky.worker.errors",
    "DownloadError": "crowdsky.worker.errors",
    "JobAborted": "crowdsky.worker.errors",
    "LeaseLost": "crowdsky.worker.errors",
    "StackingFailed": "crowdsky.worker.errors",
    "StorageAuthError": "crowdsky.worker.errors",
    "StorageError": "crowdsky.worker.errors",
    "WorkerError": "crowdsky.worker.errors",
    "JobControl": "crowdsky.worker.job_control",
    "JobOutcome": "crowdsky.worker.job_control",
    "JobProcessor": "crowdsky.worker.job_processor",
    "process_job": "crowdsky.worker.job_processor",
    "Worker": "crowdsky.worker.main",
    "run": "crowdsky.worker.main",
    "WebDavClient": "crowdsky.worker.webdav",
}
"""Public name -> the module that defines it."""


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
