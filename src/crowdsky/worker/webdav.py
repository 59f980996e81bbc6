"""WebDAV client for a Nextcloud public link share: the worker's result store for stacks.

It follows Nextcloud's public-share rules (``original-system.md`` §10): the legacy
``.../public.php/webdav`` endpoint (share token as Basic user) and the newer
``.../public.php/dav/files/<token>``; ``X-Requested-With`` on every request, without
which Nextcloud refuses public writes; ``MKCOL`` level by level with a trailing slash.
``PUT`` streams from disk. 401/403 are never retried (they feed Nextcloud's
brute-force throttle) and 507 (share full) fails at once; connection errors, 429 and
transient 5xx are retried with backoff. :class:`WebDavClient` is a
:class:`crowdsky.storage.result_store.ResultStore`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from crowdsky import __version__
from crowdsky.storage import webdav_share
from crowdsky.storage.webdav_share import ShareEndpoint
from crowdsky.worker.config import WorkerSettings, token_in_share_url
from crowdsky.worker.errors import ConfigError, StorageAuthError, StorageError
from crowdsky.worker.retry import (
    RetryableStatus,
    RetryPolicy,
    describe_http_error,
    is_retryable_status,
)

log = structlog.get_logger(__name__)

WEBDAV_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
TRANSFER_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
UPLOAD_CHUNK_BYTES = 1024 * 1024


def resolve_share_endpoint(url: str, token: str | None, password: str | None) -> ShareEndpoint:
    """:func:`crowdsky.storage.webdav_share.resolve_share_endpoint`, its refusal as
    the worker's :class:`ConfigError`."""
    try:
        return webdav_share.resolve_share_endpoint(url, token, password)
    except webdav_share.ShareConfigError as exc:
        raise ConfigError(str(exc)) from exc


def encode_remote_path(remote_path: str) -> str:
    """:func:`crowdsky.storage.webdav_share.encode_remote_path`, its refusal as
    the worker's :class:`StorageError`."""
    try:
        return webdav_share.encode_remote_path(remote_path)
    except ValueError as exc:
        raise StorageError(str(exc)) from exc


class WebDavClient:
    """A Nextcloud public share (or any WebDAV collection) reached over one httpx client.

    Parameters
    ----------
    url, token, password
        As in :func:`resolve_share_endpoint`.
    transport
        Injected in tests; default: real network.
    retry
        Retry policy for transient failures.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        password: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = WEBDAV_TIMEOUT,
        transfer_timeout: httpx.Timeout = TRANSFER_TIMEOUT,
    ) -> None:
        self.endpoint = resolve_share_endpoint(url, token, password)
        self.retry = retry or RetryPolicy()
        self._transfer_timeout = transfer_timeout
        self._known_dirs: set[str] = set()
        self._lock = threading.Lock()
        self._client = httpx.Client(
            base_url=self.endpoint.base_url.rstrip("/") + "/",
            auth=self.endpoint.auth,
            headers={
                "X-Requested-With": "XMLHttpRequest",
                "User-Agent": f"crowdsky-worker/{__version__}",
            },
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_settings(
        cls, settings: WorkerSettings, *, transport: httpx.BaseTransport | None = None
    ) -> WebDavClient:
        """The client for ``UCLOUD_WEBDAV_URL`` / ``UCLOUD_SHARE_TOKEN`` / ``..._PASSWORD``."""
        if not settings.ucloud_webdav_url:
            raise ConfigError("UCLOUD_WEBDAV_URL is missing (needed for the WebDAV store)")
        token = settings.ucloud_share_token
        password = settings.ucloud_share_password
        return cls(
            settings.ucloud_webdav_url,
            token.get_secret_value() if token else token_in_share_url(settings.ucloud_webdav_url),
            password.get_secret_value() if password else None,
            transport=transport,
        )

    def describe(self) -> str:
        """Log-safe description: the share root URL and flavour, never the credentials."""
        parts = urlsplit(self.endpoint.base_url)
        path = parts.path
        if self.endpoint.flavour == "v2":
            path = path.rsplit("/", 1)[0] + "/<token>"
        return f"webdav[{self.endpoint.flavour}] {parts.scheme}://{parts.netloc}{path}"

    # -- life cycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> WebDavClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the spec's operations --------------------------------------------------------

    def mkcol(self, remote_path: str) -> None:
        """Create the collection ``remote_path`` and every missing parent, level by level.

        Folders created (or found) earlier by this client are skipped, so repeated
        uploads into one folder cost no extra round trips.
        """
        segments = [s for s in remote_path.split("/") if s]
        for depth in range(1, len(segments) + 1):
            sub = "/".join(segments[:depth])
            with self._lock:
                if sub in self._known_dirs:
                    continue
            response = self._send("MKCOL", encode_remote_path(sub) + "/", what=f"MKCOL /{sub}/")
            if response.status_code not in (200, 201, 204, 405):
                raise self._error(response, f"MKCOL /{sub}/")
            with self._lock:
                self._known_dirs.add(sub)

    def upload_file(
        self,
        local_path: Path | str,
        remote_path: str,
        *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        """Stream ``local_path`` to ``remote_path`` with PUT (overwriting); returns bytes sent.

        The parent collection must exist (see :meth:`mkcol`); a 409 (parent missing,
        e.g. removed by someone else) re-creates it once and repeats the PUT.
        """
        local_path = Path(local_path)
        size = local_path.stat().st_size
        target = encode_remote_path(remote_path)

        def body() -> Iterator[bytes]:
            with open(local_path, "rb") as fh:
                while chunk := fh.read(UPLOAD_CHUNK_BYTES):
                    if on_bytes is not None:
                        on_bytes(len(chunk))
                    yield chunk

        def put() -> httpx.Response:
            return self._send(
                "PUT",
                target,
                what=f"PUT {remote_path}",
                content_factory=body,
                headers={
                    "Content-Length": str(size),
                    "Content-Type": "application/octet-stream",
                },
                timeout=self._transfer_timeout,
            )

        response = put()
        if response.status_code == 409:
            parent = remote_path.rsplit("/", 1)[0]
            with self._lock:
                self._known_dirs.clear()
            self.mkcol(parent)
            response = put()
        if response.status_code not in (200, 201, 204):
            raise self._error(response, f"PUT {remote_path}")
        log.debug("webdav_put", remote_path=remote_path, bytes=size)
        return size

    def download_file(self, remote_path: str, local_path: Path | str) -> int:
        """Stream ``remote_path`` into ``local_path`` (via ``.part`` and a rename)."""
        local_path = Path(local_path)
        part = local_path.with_name(local_path.name + ".part")
        target = encode_remote_path(remote_path)

        def attempt() -> int:
            with self._client.stream("GET", target, timeout=self._transfer_timeout) as response:
                if response.status_code != 200:
                    response.read()
                    if is_retryable_status(response.status_code):
                        raise RetryableStatus(response)
                    raise self._error(response, f"GET {remote_path}")
                written = 0
                with open(part, "wb") as fh:
                    for chunk in response.iter_bytes(UPLOAD_CHUNK_BYTES):
                        fh.write(chunk)
                        written += len(chunk)
                return written

        try:
            written = self.retry.call(attempt, what=f"GET {remote_path}")
        except (httpx.TransportError, RetryableStatus) as exc:
            part.unlink(missing_ok=True)
            raise StorageError(
                f"GET {remote_path}: failed after {self.retry.attempts} attempts: "
                f"{describe_http_error(exc)}"
            ) from exc
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, local_path)
        return written

    def delete_files(self, remote_paths: Iterable[str]) -> None:
        """Delete files; ones already gone (404) count as deleted."""
        for remote_path in remote_paths:
            response = self._send(
                "DELETE", encode_remote_path(remote_path), what=f"DELETE {remote_path}"
            )
            if response.status_code not in (200, 204, 404):
                raise self._error(response, f"DELETE {remote_path}")

    def exists(self, remote_path: str) -> bool:
        """True if ``remote_path`` exists on the share (PROPFIND depth 0)."""
        response = self._send(
            "PROPFIND",
            encode_remote_path(remote_path),
            what=f"PROPFIND {remote_path}",
            headers={"Depth": "0"},
        )
        if response.status_code == 404:
            return False
        if response.status_code not in (200, 207):
            raise self._error(response, f"PROPFIND {remote_path}")
        return True

    # -- plumbing ---------------------------------------------------------------------

    def _send(
        self,
        method: str,
        target: str,
        *,
        what: str,
        content_factory: Callable[[], Iterator[bytes]] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        def attempt() -> httpx.Response:
            if content_factory is not None:
                # A streamed body is consumed by a try; every retry needs a fresh one.
                kwargs["content"] = content_factory()
            response = self._client.request(method, target, **kwargs)
            if is_retryable_status(response.status_code):
                raise RetryableStatus(response)
            if response.status_code in (401, 403):
                raise self._error(response, what)
            return response

        try:
            return self.retry.call(attempt, what=what)
        except (httpx.TransportError, RetryableStatus) as exc:
            status = exc.response.status_code if isinstance(exc, RetryableStatus) else None
            raise StorageError(
                f"{what}: WebDAV share unavailable after {self.retry.attempts} attempts: "
                f"{describe_http_error(exc)}",
                status_code=status,
            ) from exc
        except httpx.HTTPError as exc:
            raise StorageError(f"{what}: {describe_http_error(exc)}") from exc

    def _error(self, response: httpx.Response, what: str) -> StorageError:
        status = response.status_code
        if status in (401, 403):
            return StorageAuthError(
                f"{what}: HTTP {status} from the share: credentials rejected (check "
                "UCLOUD_WEBDAV_URL, UCLOUD_SHARE_TOKEN, UCLOUD_SHARE_PASSWORD and that the "
                "share allows editing)",
                status_code=status,
            )
        reason = {
            507: "insufficient storage: the share is full",
            404: "not found",
            409: "parent folder missing",
            423: "locked",
        }.get(status, response.reason_phrase or "error")
        return StorageError(f"{what}: HTTP {status} from the share ({reason})", status_code=status)
