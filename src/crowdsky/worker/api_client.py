"""Client of the server's worker API: claim, list files, download raws, heartbeat, report.

:class:`ApiClient` wraps one :class:`httpx.Client` (Bearer auth, explicit timeouts,
the worker's :class:`~crowdsky.worker.retry.RetryPolicy`) and keeps the spec's
function names and return shapes as methods (``worker-api-reference.md``). It
remembers each claimed job's lease token, so ``complete_job``, ``fail_job`` and
``heartbeat`` present it without the caller passing it along. Failures become
:mod:`crowdsky.worker.errors` exceptions (401/403 :class:`ApiAuthError`, never
retried; 409 :class:`LeaseLost`; exhausted retries :class:`ApiUnavailable`).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import httpx
import structlog

from crowdsky import __version__
from crowdsky.worker.errors import (
    ApiAuthError,
    ApiError,
    ApiUnavailable,
    DownloadError,
    JobAborted,
    LeaseLost,
)
from crowdsky.worker.retry import (
    RetryableStatus,
    RetryPolicy,
    describe_http_error,
    is_retryable_status,
)

log = structlog.get_logger(__name__)

API_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DOWNLOAD_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
DOWNLOAD_CHUNK_BYTES = 256 * 1024
MAX_ERROR_MESSAGE_CHARS = 500
MAX_PROGRESS_MESSAGE_CHARS = 200
_UNSENDABLE = re.compile(r"[\x00\ud800-\udfff]")


def report_text(text: str, limit: int) -> str:
    """Text for the server's free-text fields: trimmed, at most ``limit`` characters.

    An exception's text can hold anything, such as a NUL from a corrupt file name or a
    lone surrogate from undecodable bytes, which the server refuses (400) and which
    would leave a failure unreported until the lease runs out. Those characters are
    replaced by U+FFFD.
    """
    clean = _UNSENDABLE.sub("\ufffd", text).strip()
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


class JobPayload(TypedDict):
    """A claimed job as ``next_job.php`` returns it (extensions marked NotRequired)."""

    job_id: int
    user_id: int
    upload_session_id: NotRequired[int]
    chunk_key: str
    object_name: str | None
    frame_count: int
    session_ucloud_path: NotRequired[str | None]
    lease_token: NotRequired[str]
    lease_expires_at: NotRequired[str]
    lease_seconds: NotRequired[int]
    kind: NotRequired[str]


class JobFile(TypedDict):
    """One raw file of a job; values arrive string-typed, as in the spec."""

    id: str
    filename: str
    file_size_bytes: str
    ucloud_path: NotRequired[str | None]
    fits_date_obs: NotRequired[str | None]
    fits_exptime: NotRequired[str | None]
    fits_ra: NotRequired[str | None]
    fits_dec: NotRequired[str | None]


class JobFiles(TypedDict):
    """The answer of ``job_files.php``."""

    job_id: int
    chunk_key: str
    files: list[JobFile]


class ApiClient:
    """The worker API of one CrowdSky server.

    Parameters
    ----------
    base_url
        ``API_BASE_URL``, ending in ``/api``.
    api_key
        ``WORKER_API_KEY`` (shared key or per-worker token); sent as a Bearer token.
    worker_id
        Sent with the claim and every report, so the server can check who holds a job.
    transport
        Injected in tests (``httpx.MockTransport``); default: real network.
    retry
        The retry policy for transient failures.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        worker_id: str,
        *,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = API_TIMEOUT,
        download_timeout: httpx.Timeout = DOWNLOAD_TIMEOUT,
        max_connections: int = 16,
    ) -> None:
        self.worker_id = worker_id
        self.retry = retry or RetryPolicy()
        self._download_timeout = download_timeout
        self._leases: dict[int, str] = {}
        self._lock = threading.Lock()
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": f"crowdsky-worker/{__version__}",
                "Accept": "application/json",
            },
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections),
            follow_redirects=False,
        )

    # -- life cycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._client.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the spec's calls -------------------------------------------------------------

    def get_next_job(self) -> JobPayload | None:
        """Claim the next job; ``None`` when the queue has nothing (204)."""
        # Not idempotent: a lost reply may hide a claim, and the lease reaper re-queues it.
        response = self._request(
            "GET",
            "next_job.php",
            params={"worker_id": self.worker_id},
            what="next_job",
            idempotent=False,
        )
        if response.status_code == 204 or not response.content.strip():
            return None
        body = _json_object(response, "next_job")
        try:
            job: JobPayload = {
                **body,  # type: ignore[typeddict-item]
                "job_id": int(body["job_id"]),
                "user_id": int(body["user_id"]),
                "chunk_key": str(body["chunk_key"]),
                "object_name": body.get("object_name"),
                "frame_count": int(body.get("frame_count") or 0),
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ApiError(f"next_job: malformed job in the reply: {exc!r}") from exc
        token = body.get("lease_token")
        if token:
            with self._lock:
                self._leases[job["job_id"]] = str(token)
        return job

    def get_job_files(self, job_id: int) -> JobFiles:
        """The raw files of a job, in DATE-OBS order, as the server lists them."""
        # worker_id and lease_token let the server refuse a job we no longer hold.
        params: dict[str, Any] = {"job_id": job_id, **self._identity(job_id)}
        response = self._request(
            "GET", "job_files.php", params=params, what="job_files", job_id=job_id
        )
        body = _json_object(response, "job_files")
        files = body.get("files")
        if not isinstance(files, list):
            raise ApiError("job_files: the reply has no 'files' list")
        for entry in files:
            if not isinstance(entry, dict) or "id" not in entry or "filename" not in entry:
                raise ApiError(f"job_files: malformed file entry {entry!r}")
        return body  # type: ignore[return-value]

    def download_raw_file(
        self,
        file_id: int,
        local_path: Path,
        *,
        expected_size: int | None = None,
        on_bytes: Callable[[int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> int:
        """Stream one raw file to ``local_path`` and return its size in bytes.

        The bytes go to ``<name>.part`` first and are renamed only once the size
        matches both ``Content-Length`` and ``expected_size`` (the job file list's
        ``file_size_bytes``), so a truncated transfer never looks like a raw frame.
        Transient failures restart the download from the beginning.

        Raises
        ------
        DownloadError
            404 (the raw is gone) or a size mismatch after all retries.
        """
        local_path = Path(local_path)
        part = local_path.with_name(local_path.name + ".part")

        def attempt() -> int:
            with self._client.stream(
                "GET",
                "download_raw.php",
                params={"file_id": file_id},
                timeout=self._download_timeout,
                # An object-store server answers 307 to a presigned URL; httpx drops
                # the Authorization header on the cross-origin hop, so the worker key
                # never reaches the store.
                follow_redirects=True,
            ) as response:
                if response.status_code != 200:
                    response.read()
                    self._raise_for_status(response, "download_raw", job_id=None)
                declared = response.headers.get("Content-Length")
                written = 0
                with open(part, "wb") as fh:
                    for chunk in response.iter_bytes(DOWNLOAD_CHUNK_BYTES):
                        if should_stop is not None and should_stop():
                            raise JobAborted(f"download of raw file {file_id} interrupted")
                        fh.write(chunk)
                        written += len(chunk)
                        if on_bytes is not None:
                            on_bytes(len(chunk))
            if declared is not None and int(declared) != written:
                # A cut connection that httpx did not notice: worth another try.
                raise httpx.ReadError(f"raw file {file_id}: got {written} of {declared} bytes")
            return written

        try:
            written = self.retry.call(attempt, what=f"download_raw {file_id}")
        except (httpx.TransportError, RetryableStatus) as exc:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"raw file {file_id}: download failed after {self.retry.attempts} attempts: "
                f"{describe_http_error(exc)}"
            ) from exc
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        if expected_size is not None and written != expected_size:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"raw file {file_id}: expected {expected_size} bytes (job file list), got {written}"
            )
        os.replace(part, local_path)
        return written

    def complete_job(self, job_id: int, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """Report a finished job with its stack metadata; safe to repeat (idempotent)."""
        body = {**metadata, "job_id": job_id, **self._identity(job_id)}
        response = self._request(
            "POST", "complete_job.php", json=body, what="complete_job", job_id=job_id
        )
        self.forget_lease(job_id)
        return _json_object(response, "complete_job")

    def result_upload_urls(self, job_id: int) -> dict[str, Any]:
        """Extension: presigned PUT URLs for the job's result files (``files``: kind,
        path, url), from a server with an S3 result store."""
        body = {"job_id": job_id, **self._identity(job_id)}
        response = self._request(
            "POST", "result_upload_urls.php", json=body, what="result_upload_urls", job_id=job_id
        )
        return _json_object(response, "result_upload_urls")

    def fail_job(self, job_id: int, error_message: str) -> dict[str, Any]:
        """Report a failed job; the server decides between ``retry`` and ``failed``."""
        message = report_text(error_message or "Unknown error", MAX_ERROR_MESSAGE_CHARS)
        body = {"job_id": job_id, "error_message": message, **self._identity(job_id)}
        response = self._request("POST", "fail_job.php", json=body, what="fail_job", job_id=job_id)
        self.forget_lease(job_id)
        return _json_object(response, "fail_job")

    def release_job(self, job_id: int, reason: str) -> dict[str, Any]:
        """Hand a job back to the queue (shutting down) without a failed attempt.

        ``release_job`` is an extension of our server; against a server without it
        (404/405 for the endpoint) the job is handed back with ``fail_job`` instead.
        """
        body = {
            "job_id": job_id,
            "reason": report_text(reason, MAX_ERROR_MESSAGE_CHARS),
            **self._identity(job_id),
        }
        try:
            response = self._request(
                "POST", "release_job.php", json=body, what="release_job", job_id=job_id
            )
        except LeaseLost:
            raise
        except ApiError as exc:
            if exc.status_code not in (404, 405):
                raise
            return self.fail_job(job_id, reason)
        self.forget_lease(job_id)
        return _json_object(response, "release_job")

    def heartbeat(
        self, job_id: int, *, progress: float | None = None, message: str | None = None
    ) -> dict[str, Any]:
        """Extend the job's lease and report progress (0..1).

        Raises
        ------
        LeaseLost
            409/404: the job is no longer this worker's; stop working on it.
        """
        body: dict[str, Any] = {"job_id": job_id, **self._identity(job_id)}
        if progress is not None:
            body["progress"] = round(min(1.0, max(0.0, progress)), 4)
        if message:
            body["message"] = report_text(message, MAX_PROGRESS_MESSAGE_CHARS)
        try:
            response = self._request(
                "POST", "heartbeat.php", json=body, what="heartbeat", job_id=job_id
            )
        except ApiError as exc:
            if exc.status_code == 404:
                raise LeaseLost(str(exc), status_code=404) from exc
            raise
        return _json_object(response, "heartbeat")

    # -- lease bookkeeping ------------------------------------------------------------

    def lease_token(self, job_id: int) -> str | None:
        """The lease token received when ``job_id`` was claimed, if the server sent one."""
        with self._lock:
            return self._leases.get(job_id)

    def remember_lease(self, job_id: int, lease_token: str | None) -> None:
        """Record a job's lease token (for a job claimed through another client)."""
        if lease_token:
            with self._lock:
                self._leases[job_id] = str(lease_token)

    def forget_lease(self, job_id: int) -> None:
        """Drop a finished job's lease token."""
        with self._lock:
            self._leases.pop(job_id, None)

    def _identity(self, job_id: int) -> dict[str, str]:
        ident = {"worker_id": self.worker_id}
        token = self.lease_token(job_id)
        if token:
            ident["lease_token"] = token
        return ident

    # -- plumbing ---------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        job_id: int | None = None,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        def attempt() -> httpx.Response:
            response = self._client.request(method, path, **kwargs)
            if response.status_code >= 400:
                self._raise_for_status(response, what, job_id=job_id)
            return response

        try:
            return self.retry.call(attempt, what=what, idempotent=idempotent)
        except (httpx.TransportError, RetryableStatus) as exc:
            raise ApiUnavailable(
                f"{what}: server unavailable: {describe_http_error(exc)}",
                status_code=exc.response.status_code if isinstance(exc, RetryableStatus) else None,
            ) from exc

    @staticmethod
    def _raise_for_status(response: httpx.Response, what: str, *, job_id: int | None) -> None:
        status = response.status_code
        if is_retryable_status(status):
            raise RetryableStatus(response)
        detail = _error_detail(response)
        message = f"{what}: HTTP {status}" + (f": {detail}" if detail else "")
        if status in (401, 403):
            raise ApiAuthError(message + " (check WORKER_API_KEY)", status_code=status)
        if status == 409:
            raise LeaseLost(message, status_code=status)
        if what.startswith("download_raw") and status == 404:
            raise DownloadError(message, status_code=status)
        raise ApiError(message, status_code=status)


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if key in body:
                return str(body[key])[:300]
    return str(body)[:200]


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise ApiError(f"{what}: the reply is not JSON", status_code=response.status_code) from exc
    if not isinstance(body, dict):
        raise ApiError(f"{what}: the reply is not a JSON object", status_code=response.status_code)
    return body
