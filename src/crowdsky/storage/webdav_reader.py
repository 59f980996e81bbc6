"""Reading results back from the workers' WebDAV share (a Nextcloud public link).

The server answers ``download_stack``, ``download_frame`` and the web downloads from
the share the workers publish to: one streamed ``GET`` per file over a pooled httpx
client, relayed chunk by chunk; it deletes the files of stacks whose rows are gone.
Requests send ``X-Requested-With: XMLHttpRequest`` as every Nextcloud public-share
client does, never follow redirects (a share that redirects is misconfigured) and
never retry a 401/403 (Nextcloud's brute-force throttle counts them).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import httpx

from crowdsky import __version__
from crowdsky.storage import result_reader, webdav_share

READ_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


class WebDavResultReader:
    """Published results on a WebDAV share, read by share-style path.

    Parameters
    ----------
    url, token, password
        ``UCLOUD_WEBDAV_URL``, ``UCLOUD_SHARE_TOKEN``, ``UCLOUD_SHARE_PASSWORD``, as the
        workers use them (:func:`crowdsky.storage.webdav_share.resolve_share_endpoint`).
    transport
        Injected in tests; default: the network.

    Raises
    ------
    ShareConfigError
        The URL and token do not name a share.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        password: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = webdav_share.resolve_share_endpoint(
            url, token or webdav_share.token_in_share_url(url), password
        )
        self._client = httpx.Client(
            base_url=self.endpoint.base_url.rstrip("/") + "/",
            auth=self.endpoint.auth,
            headers={
                "X-Requested-With": "XMLHttpRequest",
                "User-Agent": f"crowdsky-server/{__version__}",
            },
            timeout=READ_TIMEOUT,
            transport=transport,
            follow_redirects=False,
        )

    def describe(self) -> str:
        """The share's host and flavour, never its token or password."""
        parts = urlsplit(self.endpoint.base_url)
        return f"webdav[{self.endpoint.flavour}] {parts.scheme}://{parts.netloc}"

    def open_file(self, remote_path: str) -> result_reader.StoredFile:
        """Start a streamed ``GET`` of ``remote_path``.

        Raises
        ------
        ResultFileMissing
            404, or a refused path.
        ResultStoreUnavailable
            Any other answer, or no connection.
        """
        try:
            target = webdav_share.encode_remote_path(remote_path)
        except ValueError as exc:
            raise result_reader.ResultFileMissing(str(exc)) from exc
        try:
            response = self._client.send(self._client.build_request("GET", target), stream=True)
        except httpx.HTTPError as exc:
            raise result_reader.ResultStoreUnavailable(
                f"WebDAV GET {remote_path}: {type(exc).__name__}"
            ) from exc
        if response.status_code != 200:
            response.close()
            if response.status_code == 404:
                raise result_reader.ResultFileMissing(f"no result file {remote_path!r}")
            raise result_reader.ResultStoreUnavailable(
                f"WebDAV GET {remote_path}: HTTP {response.status_code}"
            )
        length = response.headers.get("content-length")
        size = int(length) if length is not None and length.isdigit() else None
        chunks = response.iter_bytes(result_reader.READ_CHUNK_BYTES)
        return result_reader.StoredFile(
            size,
            result_reader.read_chunks(lambda _n: next(chunks, b""), response.close),
            response.close,
        )

    def delete_files(self, remote_paths: Iterable[str]) -> None:
        """``DELETE`` each file; one already gone (404) is not an error.

        Raises
        ------
        ResultStoreUnavailable
            Another answer, or no connection (the files after it are not tried).
        """
        for remote_path in remote_paths:
            try:
                target = webdav_share.encode_remote_path(remote_path)
            except ValueError as exc:
                raise result_reader.ResultStoreUnavailable(str(exc)) from exc
            try:
                status = self._client.delete(target).status_code
            except httpx.HTTPError as exc:
                raise result_reader.ResultStoreUnavailable(
                    f"WebDAV DELETE {remote_path}: {type(exc).__name__}"
                ) from exc
            if status not in (200, 204, 404):
                raise result_reader.ResultStoreUnavailable(
                    f"WebDAV DELETE {remote_path}: HTTP {status}"
                )

    def presigned_get_url(
        self, remote_path: str, *, download_name: str, expires_s: int
    ) -> str | None:
        """A share's URLs need its token: never handed out (``None``)."""
        return None

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
