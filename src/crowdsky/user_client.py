"""Client of the server's user read API, for ``crowdsky jobs`` and ``crowdsky stacks``.

``my_jobs``, ``my_stacks`` (the whole list in one call, as clients.md requires) and
``download_stack`` (streamed to a ``.part`` file, renamed into place when complete).

One :class:`httpx.Client` signed in with an API key (Bearer) or a user name and
password (HTTP Basic). Failures become :class:`UserApiError` with the server's
``{"error": ...}`` text and the status (None when the server could not be reached).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from crowdsky import __version__, client_http

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_JOBS = 1000
DOWNLOAD_CHUNK_BYTES = 256 * 1024


class UserApiError(Exception):
    """A user API call failed; ``status_code`` is None when the server was unreachable."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class UserClient:
    """The user API of one server, as one user."""

    def __init__(
        self,
        server_url: str,
        *,
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self._http = client_http.signed_in_client(
            self.server_url,
            api_key=api_key,
            username=username,
            password=password,
            timeout=TIMEOUT,
            transport=transport,
            headers={"User-Agent": f"crowdsky-cli/{__version__}", "Accept": "application/json"},
        )

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> UserClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def my_jobs(
        self, *, session_token: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The caller's newest ``limit`` jobs, oldest first."""
        params: dict[str, str | int] = {"limit": limit}
        if session_token:
            params["session_token"] = session_token
        body = self._get("/api/my_jobs.php", params)
        jobs: list[dict[str, Any]] = body["jobs"]
        return jobs

    def job(self, job_id: int) -> dict[str, Any] | None:
        """One of the caller's jobs (among the newest :data:`MAX_JOBS`), or None."""
        return next((j for j in self.my_jobs(limit=MAX_JOBS) if j["job_id"] == job_id), None)

    def my_stacks(self, *, object_name: str | None = None) -> list[dict[str, Any]]:
        """All the caller's stacks, newest observation first."""
        params: dict[str, str | int] = {"object": object_name} if object_name else {}
        stacks: list[dict[str, Any]] = self._get("/api/my_stacks.php", params)
        return stacks

    def download_stack(
        self,
        chunk_key: str,
        destination: Path,
        *,
        on_start: Callable[[str, int | None], None] | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Path:
        """Save the caller's newest stack of ``chunk_key``; returns the file written.

        ``destination`` is a folder (the server's file name is used, else
        ``<chunk key>.fits``) or a file path. ``on_start(name, size)`` is called once
        the server answers, ``on_bytes(n)`` for each piece received.
        """
        try:
            with self._http.stream(
                "GET", "/api/download_stack.php", params={"chunk_key": chunk_key}
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise UserApiError(_error_text(response), response.status_code)
                name = _attachment_name(response.headers.get("content-disposition", ""))
                name = name or f"{chunk_key}.fits"
                target = destination / name if destination.is_dir() else destination
                size = response.headers.get("content-length")
                if on_start:
                    on_start(target.name, int(size) if size and size.isdigit() else None)
                partial = target.with_name(target.name + ".part")
                with partial.open("wb") as handle:
                    for piece in response.iter_bytes(DOWNLOAD_CHUNK_BYTES):
                        handle.write(piece)
                        if on_bytes:
                            on_bytes(len(piece))
                partial.replace(target)
                return target
        except httpx.TransportError as exc:
            raise UserApiError(f"cannot reach {self.server_url}: {exc}") from exc

    def _get(self, path: str, params: dict[str, str | int]) -> Any:
        try:
            response = self._http.get(path, params=params)
        except httpx.TransportError as exc:
            raise UserApiError(f"cannot reach {self.server_url}: {exc}") from exc
        if response.status_code >= 400:
            raise UserApiError(_error_text(response), response.status_code)
        return response.json()


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text[:200]))
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


def _attachment_name(disposition: str) -> str | None:
    """The file name of ``attachment; filename="NAME"``, reduced to a safe base name."""
    found = re.search(r'filename="?([^";]+)"?', disposition)
    if not found:
        return None
    name = Path(found.group(1)).name
    return name if name not in ("", ".", "..") else None
