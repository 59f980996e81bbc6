"""Results by presigned PUT: a result store that needs no credentials of its own.

``RESULT_STORE=presigned``: before a job's upload the worker asks the server
(``result_upload_urls``) for one presigned PUT URL per result file, then streams each
file to its URL. The server names the paths (reported back in ``complete_job``) and
checks the objects before it accepts the completion, so a volunteer's machine holds
neither the store's keys nor any say over where results go.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

import httpx

from crowdsky import __version__
from crowdsky.storage.result_paths import ResultPaths
from crowdsky.worker.api_client import ApiClient
from crowdsky.worker.errors import StorageError
from crowdsky.worker.retry import RetryableStatus, RetryPolicy, is_retryable_status

UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
CHUNK_BYTES = 1024 * 1024


class PresignedResultStore:
    """Publishes a held job's results to the URLs the server signed for them.

    Parameters
    ----------
    api
        The worker's API client (asks for the URLs with the job's lease).
    transport, retry
        For tests; PUTs are retried on transport errors, 5xx and 429.
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._api = api
        self._retry = retry or RetryPolicy()
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()
        self._client = httpx.Client(
            timeout=UPLOAD_TIMEOUT,
            transport=transport,
            headers={"User-Agent": f"crowdsky-worker/{__version__}"},
            follow_redirects=False,
        )

    def describe(self) -> str:
        """``presigned PUT via <server>``."""
        return "presigned PUT (URLs from the API server)"

    def prepare_job(self, job_id: int) -> ResultPaths:
        """Fetch the job's upload URLs; the server's paths for its stack and thumbnail."""
        reply = self._api.result_upload_urls(job_id)
        paths: dict[str, str] = {}
        with self._lock:
            for item in reply.get("files", []):
                self._urls[str(item["path"])] = str(item["url"])
                paths[str(item["kind"])] = str(item["path"])
        if "fits" not in paths or "thumbnail" not in paths:
            raise StorageError(f"result_upload_urls for job {job_id} named no stack path")
        folder = paths["fits"].rpartition("/")[0] or "/"
        return ResultPaths(folder=folder, fits=paths["fits"], thumbnail=paths["thumbnail"])

    def mkcol(self, remote_path: str) -> None:
        """Object stores have no folders."""

    def upload_file(
        self,
        local_path: Path | str,
        remote_path: str,
        *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        """PUT ``local_path`` to the URL signed for ``remote_path``; returns the size."""
        with self._lock:
            url = self._urls.get(remote_path)
        if url is None:
            raise StorageError(f"the server signed no upload for {remote_path}")
        size = Path(local_path).stat().st_size

        def attempt() -> httpx.Response:
            with open(local_path, "rb") as fh:
                response = self._client.put(
                    url,
                    content=_chunks(fh, on_bytes),
                    headers={"Content-Length": str(size)},
                )
            if is_retryable_status(response.status_code):
                raise RetryableStatus(response)
            return response

        try:
            response = self._retry.call(attempt, what="result upload")
        except (httpx.TransportError, RetryableStatus) as exc:
            raise StorageError(f"result upload of {remote_path}: {exc}") from exc
        if response.status_code >= 400:
            raise StorageError(
                f"result upload of {remote_path}: HTTP {response.status_code} "
                f"{response.text[:200]}",
                status_code=response.status_code,
            )
        with self._lock:
            self._urls.pop(remote_path, None)
        return size

    def delete_files(self, remote_paths: Iterable[str]) -> None:
        """Nothing to delete without credentials: a retry of the job overwrites the same
        paths. The URLs are forgotten."""
        with self._lock:
            for path in remote_paths:
                self._urls.pop(path, None)

    def close(self) -> None:
        """Close the upload connections."""
        self._client.close()


def _chunks(fh: IO[bytes], on_bytes: Callable[[int], None] | None) -> Iterator[bytes]:
    while chunk := fh.read(CHUNK_BYTES):
        if on_bytes is not None:
            on_bytes(len(chunk))
        yield chunk
