"""Client of the server's user read API (``my_jobs``), for ``crowdsky jobs``.

One :class:`httpx.Client` signed in with an API key (Bearer) or a user name and
password (HTTP Basic). Failures become :class:`UserApiError` with the server's
``{"error": ...}`` text and the status (None when the server could not be reached).
"""

from __future__ import annotations

from typing import Any

import httpx

from crowdsky import __version__

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
MAX_JOBS = 1000


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
        headers = {"User-Agent": f"crowdsky-cli/{__version__}", "Accept": "application/json"}
        auth: httpx.Auth | None = None
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        elif username and password is not None:
            auth = httpx.BasicAuth(username, password)
        self.server_url = server_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.server_url,
            headers=headers,
            auth=auth,
            timeout=TIMEOUT,
            transport=transport,
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

    def _get(self, path: str, params: dict[str, str | int]) -> Any:
        try:
            response = self._http.get(path, params=params)
        except httpx.TransportError as exc:
            raise UserApiError(f"cannot reach {self.server_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = str(response.json().get("error", response.text[:200]))
            except (ValueError, AttributeError):
                message = f"HTTP {response.status_code}: {response.text[:200]}"
            raise UserApiError(message, response.status_code)
        return response.json()
