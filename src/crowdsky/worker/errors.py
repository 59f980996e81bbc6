"""The worker's exception tree: everything the worker raises on purpose derives from WorkerError.

httpx, OSError and stacking-engine exceptions are caught where they arise (the API
client, the WebDAV client, the stacking adapter) and re-raised as one of these
``from exc``, so the job processor can turn any failure into one readable
``fail_job`` message and the daemon can tell "try again later" from "give up".
An exception's docstring is its default message.
"""

from __future__ import annotations


class WorkerError(Exception):
    """The worker could not do what was asked."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__class__.__doc__ or "").strip())


class ConfigError(WorkerError):
    """The worker configuration is invalid."""


class ApiError(WorkerError):
    """The CrowdSky server answered a worker API call with an error."""

    def __init__(self, message: str | None = None, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ApiUnavailable(ApiError):
    """The CrowdSky server could not be reached (or kept failing) after all retries."""


class ApiAuthError(ApiError):
    """The server rejected the worker key (401/403); check WORKER_API_KEY."""


class LeaseLost(ApiError):
    """The server says this worker no longer holds the job (its lease expired or was taken)."""


class DownloadError(ApiError):
    """A raw file could not be downloaded completely."""


class StorageError(WorkerError):
    """The result store (WebDAV share or local folder) refused or failed an operation."""

    def __init__(self, message: str | None = None, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class StorageAuthError(StorageError):
    """The WebDAV share rejected the credentials (401/403); never retried, to spare the
    share's brute-force throttle. Check UCLOUD_WEBDAV_URL, UCLOUD_SHARE_TOKEN and
    UCLOUD_SHARE_PASSWORD."""


class StackingFailed(WorkerError):
    """The stacking engine could not produce a stack from the job's frames."""


class JobAborted(WorkerError):
    """The job was abandoned before completion (lease lost or worker shutting down)."""

    def __init__(self, message: str | None = None, *, reason: str = "aborted") -> None:
        super().__init__(message)
        self.reason = reason
