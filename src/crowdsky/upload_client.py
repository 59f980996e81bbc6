"""Upload a folder of raw frames to a CrowdSky server: parallel, resumable, no duplicates.

This module owns ``crowdsky upload``'s client. The session token lives in the
user's cache folder (never in the frame folder, which may be a telescope's card);
a re-run asks the server for the session's SHA-256 list and sends only what is
missing; several connections upload at once, transient failures (connection
errors, 5xx, 429) are retried with capped backoff; finalizing returns the jobs.
One :class:`httpx.Client` (signed in by :mod:`crowdsky.client_http`); tests
inject a transport or use a real server.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import platformdirs

from crowdsky import client_http

LEGACY_STATE_FILE = ".crowdsky-upload.json"
FITS_SUFFIXES = frozenset({".fit", ".fits", ".fts"})
DEFAULT_PARALLEL = 4
MAX_ATTEMPTS = 4
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 8.0
HASH_CHUNK_BYTES = 1024 * 1024
TIMEOUT = httpx.Timeout(connect=30.0, read=300.0, write=300.0, pool=300.0)
UPLOAD_PATH = "/api/raw_upload.php"


class UploadError(Exception):
    """The server refused a request; the message is the server's explanation."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What happened to one local file."""

    path: Path
    status: str  # uploaded | duplicate | already_on_server | failed
    chunk_key: str | None = None
    error: str | None = None


@dataclass
class UploadReport:
    """The result of one run over a folder."""

    session_token: str
    files: list[FileOutcome] = field(default_factory=list)
    finalize: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False

    def count(self, status: str) -> int:
        """How many files ended with ``status``."""
        return sum(1 for f in self.files if f.status == status)

    @property
    def accepted(self) -> int:
        """Files the session holds (sent now, or earlier)."""
        return len(self.files) - len(self.failed)

    @property
    def already_finalized(self) -> bool:
        """The session had been finalized before this run: its jobs are not new."""
        return bool(self.finalize.get("already_finalized"))

    @property
    def failed(self) -> list[FileOutcome]:
        """Files the server refused."""
        return [f for f in self.files if f.status == "failed"]


ProgressCallback = Callable[[int, FileOutcome | None], None]


class UploadClient:
    """The raw upload API of one server, for one user.

    ``parallel`` sizes its connection pool, and :func:`upload_folder` sends that many
    files at once.
    """

    def __init__(
        self,
        server_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        parallel: int = DEFAULT_PARALLEL,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not api_key and not (username and password):
            raise ValueError("give an API key, or a user name and password")
        self.server_url = server_url.rstrip("/")
        self.parallel = max(parallel, 1)
        self._http = client_http.signed_in_client(
            self.server_url,
            api_key=api_key,
            username=username,
            password=password,
            timeout=TIMEOUT,
            transport=transport,
            limits=httpx.Limits(max_connections=self.parallel + 1),
        )

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> UploadClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> str:
        """Open a session; returns its token."""
        return str(self._call("POST", {"action": "start"})["session_token"])

    def status(self, token: str) -> dict[str, Any]:
        """The session's state and files (with hashes)."""
        return self._call("GET", {"action": "status", "session_token": token})

    def upload_file(self, token: str, path: Path) -> dict[str, Any]:
        """Send one file (streamed from disk)."""

        def send() -> httpx.Response:
            with path.open("rb") as handle:
                return self._http.post(
                    UPLOAD_PATH,
                    params={"action": "file"},
                    data={"session_token": token},
                    files={"file": (path.name, handle, "application/fits")},
                )

        return self._with_retries(send)

    def finalize(
        self, token: str, *, overwrite: bool = False, scrub_location: bool = False
    ) -> dict[str, Any]:
        """Turn the session into jobs (repeatable: a second call returns the same jobs)."""
        data = {
            "session_token": token,
            "overwrite": "1" if overwrite else "0",
            "scrub_location": "1" if scrub_location else "0",
        }
        return self._with_retries(
            lambda: self._http.post(UPLOAD_PATH, params={"action": "finalize"}, data=data)
        )

    def _call(self, method: str, params: dict[str, str]) -> dict[str, Any]:
        return self._with_retries(lambda: self._http.request(method, UPLOAD_PATH, params=params))

    def _with_retries(self, send: Callable[[], httpx.Response]) -> dict[str, Any]:
        delay = BACKOFF_START_S
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = send()
            except httpx.TransportError as exc:
                if attempt == MAX_ATTEMPTS:
                    raise UploadError(f"cannot reach {self.server_url}: {exc}") from exc
            else:
                if response.status_code < 400:
                    result: dict[str, Any] = response.json()
                    return result
                if response.status_code not in (429,) and response.status_code < 500:
                    raise UploadError(_error_text(response), response.status_code)
                if attempt == MAX_ATTEMPTS:
                    raise UploadError(_error_text(response), response.status_code)
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)
        raise AssertionError("unreachable")


def server_url_problem(url: str) -> str | None:
    """What is wrong with a server base URL as the user wrote it, with the fix; None if fine.

    The upload and user APIs live under ``/api/`` of the server's base URL, so a URL
    already ending in ``/api`` (as a worker's ``API_BASE_URL`` does) would ask for
    ``/api/api/...`` and get "No such endpoint".
    """
    parsed = httpx.URL(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"{url!r} is not a server URL; write it as https://HOST or http://HOST:PORT"
    path = parsed.path.rstrip("/")
    if path.endswith("/api"):
        base = str(parsed.copy_with(path=path[: -len("/api")] or "/")).rstrip("/")
        return (
            f"{url} ends in /api: give the server's base URL, --server {base} "
            "(only a worker's API_BASE_URL ends in /api)"
        )
    return None


def find_fits_files(folder: Path) -> list[Path]:
    """FITS files directly in ``folder`` (by extension), sorted by name."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in FITS_SUFFIXES and not p.name.startswith(".")
    )


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def upload_folder(
    client: UploadClient,
    folder: Path,
    *,
    overwrite: bool = False,
    scrub_location: bool = False,
    finalize: bool = True,
    on_progress: ProgressCallback | None = None,
    files: Iterable[Path] | None = None,
    state_dir: Path | None = None,
) -> UploadReport:
    """Upload every FITS file of a folder that the session does not have yet, then finalize.

    ``client.parallel`` files are sent at once. ``on_progress(bytes_sent, outcome)`` is
    called after each file (``outcome`` None for files skipped because the server
    already has them). When the server refused every file, finalize is not called (it
    would only say the session is empty): ``report.finalize`` stays empty and
    ``report.failed`` holds the reasons. ``state_dir`` overrides
    :func:`default_state_dir`.
    """
    paths = list(files) if files is not None else find_fits_files(folder)
    token, known, state = _resume_or_start(client, folder, state_dir)
    pending = [p for p in paths if not known or sha256_of(p) not in known]
    if state == "complete" and (pending or overwrite):
        # a finalized session takes no more files: new files, or all of them to stack
        # again with overwrite, go to a new session
        token, known, state = _new_session(client, folder, state_dir), set(), "new"
        if overwrite:
            pending = paths
    report = UploadReport(session_token=token, resumed=state != "new")
    for path in paths:
        if path not in pending:
            report.files.append(FileOutcome(path, "already_on_server"))
            if on_progress:
                on_progress(path.stat().st_size, None)
    _send_files(client, token, pending, report, on_progress)
    if finalize and report.accepted:
        report.finalize = client.finalize(token, overwrite=overwrite, scrub_location=scrub_location)
    return report


def _send_files(
    client: UploadClient,
    token: str,
    paths: list[Path],
    report: UploadReport,
    on_progress: ProgressCallback | None,
) -> None:
    """Upload ``paths`` into the session, ``client.parallel`` at a time, into ``report``."""
    with ThreadPoolExecutor(max_workers=client.parallel) as pool:
        futures = {pool.submit(client.upload_file, token, path): path for path in paths}
        for future in as_completed(futures):
            path = futures[future]
            try:
                answer = future.result()
                outcome = FileOutcome(
                    path,
                    "duplicate" if answer.get("duplicate") else "uploaded",
                    chunk_key=answer.get("chunk_key"),
                )
            except UploadError as exc:
                if exc.status_code in (401, 404, 409):
                    raise  # the session or the credentials are unusable: stop
                outcome = FileOutcome(path, "failed", error=str(exc))
            report.files.append(outcome)
            if on_progress:
                on_progress(path.stat().st_size, outcome)


def default_state_dir() -> Path:
    """Where upload sessions are remembered: ``<user cache dir>/crowdsky/uploads``."""
    return Path(platformdirs.user_cache_dir("crowdsky", appauthor=False)) / "uploads"


def state_path(folder: Path, state_dir: Path | None = None) -> Path:
    """The state file of one frame folder (named after a hash of its absolute path)."""
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:32]
    return (state_dir or default_state_dir()) / f"{key}.json"


def _read_sessions(folder: Path, state_dir: Path | None) -> dict[str, str]:
    """The session token per server URL remembered for ``folder``."""
    try:
        state = json.loads(state_path(folder, state_dir).read_text())
    except (OSError, ValueError):
        state = {}
    found = state.get("sessions") if isinstance(state, dict) else None
    sessions = {k: v for k, v in (found or {}).items() if isinstance(v, str)}
    legacy = folder / LEGACY_STATE_FILE
    try:
        old = json.loads(legacy.read_text())
    except (OSError, ValueError):  # none, or not ours: leave it alone
        return sessions
    if isinstance(old, dict) and isinstance(old.get("session_token"), str):
        sessions.setdefault(str(old.get("server")), old["session_token"])
        _write_sessions(folder, state_dir, sessions)
        with contextlib.suppress(OSError):  # a read-only folder keeps it; it is ignored later
            legacy.unlink()
    return sessions


def _write_sessions(folder: Path, state_dir: Path | None, sessions: dict[str, str]) -> None:
    """Remember the sessions of ``folder`` (atomic replace; an unwritable cache loses only
    the ability to resume, never the upload)."""
    path = state_path(folder, state_dir)
    state = {"folder": str(folder.resolve()), "sessions": sessions}
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(state, indent=1))
        partial.replace(path)


def _resume_or_start(
    client: UploadClient, folder: Path, state_dir: Path | None
) -> tuple[str, set[str], str]:
    """The session to continue (token, hashes it holds, its status) or a new one ("new")."""
    token = _read_sessions(folder, state_dir).get(client.server_url)
    if token:
        try:
            status = client.status(token)
        except UploadError as exc:
            if exc.status_code not in (404,):
                raise
        else:
            if status.get("status") in ("uploading", "complete"):
                return token, {f["sha256"] for f in status.get("files", [])}, status["status"]
    return _new_session(client, folder, state_dir), set(), "new"


def _new_session(client: UploadClient, folder: Path, state_dir: Path | None) -> str:
    token = client.start()
    sessions = _read_sessions(folder, state_dir)
    sessions[client.server_url] = token
    _write_sessions(folder, state_dir, sessions)
    return token


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return f"HTTP {response.status_code}"
