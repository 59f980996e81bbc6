"""A real CrowdSky server process for end-to-end tests and benchmarks.

``crowdsky server`` runs as a child process (uvicorn) on 127.0.0.1 and a free port,
with its own data dir and database, so tests exercise exactly what a deployment runs:
HTTP, the process model, migrations on start and signal handling. Built on
:mod:`crowdsky.launch`, which ``crowdsky demo`` uses too.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from crowdsky.launch import (
    LaunchError,
    ManagedProcess,
    clean_environment,
    free_port,
    start_server,
)

__all__ = ["LiveServer", "free_port", "start_live_server"]


@dataclass
class LiveServer:
    """A running server process and how to reach it."""

    url: str
    data_dir: Path
    worker_key: str
    database_url: str | None
    managed: ManagedProcess
    env: dict[str, str]

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The server's process."""
        return self.managed.process

    @property
    def log_path(self) -> Path:
        """Where the server logs."""
        return self.managed.log_path

    @property
    def api_url(self) -> str:
        """Base URL of the API, as workers configure it (``API_BASE_URL``)."""
        return f"{self.url}/api"

    @property
    def worker_headers(self) -> dict[str, str]:
        """Authorization header with the shared worker key."""
        return {"Authorization": f"Bearer {self.worker_key}"}

    def client(self, **kwargs: object) -> httpx.Client:
        """An httpx client for this server with the worker key."""
        return httpx.Client(
            base_url=self.url,
            headers=self.worker_headers,
            timeout=30.0,
            **kwargs,  # type: ignore[arg-type]
        )

    def log(self) -> str:
        """Everything the server wrote so far."""
        return self.managed.log()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask the server to stop (SIGTERM) and wait; kill it if it does not."""
        self.managed.stop(timeout_s)

    def kill(self) -> None:
        """SIGKILL the server (a crash)."""
        self.managed.kill()


def start_live_server(
    data_dir: Path,
    *,
    database_url: str | None = None,
    worker_key: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    port: int | None = None,
    workers: int = 1,
) -> LiveServer:
    """Start ``crowdsky server`` and wait until ``/healthz`` answers.

    Parameters
    ----------
    data_dir
        The server's ``CROWDSKY_DATA_DIR`` (created if missing).
    database_url
        ``CROWDSKY_DATABASE_URL``; default: SQLite in the data dir (migrated on start).
        Server databases must already be migrated.
    worker_key
        ``WORKER_API_KEY``; default: a random key.
    extra_env
        More variables (e.g. ``CROWDSKY_JOB_LEASE_SECONDS``), overriding the defaults
        here (``CROWDSKY_RESTACK_WINDOW_HOURS`` is 0 unless given).

    Raises
    ------
    RuntimeError
        When the server exits or does not become ready (message includes its log).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    worker_key = worker_key or secrets.token_hex(32)
    overrides = {
        "CROWDSKY_DATA_DIR": str(data_dir),
        "WORKER_API_KEY": worker_key,
        # raws go when their stack is recorded, as these tests check; the re-stack
        # window (24 h by default) has its own tests, which pass it in extra_env
        "CROWDSKY_RESTACK_WINDOW_HOURS": "0",
    }
    if database_url:
        overrides["CROWDSKY_DATABASE_URL"] = database_url
    overrides.update(extra_env or {})
    env = clean_environment(overrides)
    try:
        managed, url = start_server(data_dir, env=env, port=port, workers=workers)
    except LaunchError as exc:
        raise RuntimeError(f"server exited or never became ready: {exc}") from exc
    return LiveServer(url, data_dir, worker_key, database_url, managed, env)


def start_server_with_user(
    data_dir: Path, *, username: str, password: str
) -> tuple[LiveServer, str]:
    """A live SQLite server with one user who has a password and an API key (returned).

    The housekeeping loop is off, so nothing changes behind a test's back.
    """
    from crowdsky.accounts import create_api_key, create_user
    from crowdsky.db import create_db_engine, make_session_factory
    from crowdsky.db.types import utcnow

    live = start_live_server(data_dir, extra_env={"CROWDSKY_CLEANUP_INTERVAL_SECONDS": "0"})
    try:
        engine = create_db_engine(f"sqlite:///{data_dir / 'crowdsky.sqlite3'}")
        try:
            with make_session_factory(engine)() as session:
                email = f"{username}@example.org"
                create_user(session, utcnow(), username=username, email=email, password=password)
                key = create_api_key(session, utcnow(), username=username, name="test").key
        finally:
            engine.dispose()
    except BaseException:
        live.stop()
        raise
    return live, key
