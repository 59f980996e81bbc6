"""A real CrowdSky server process for end-to-end tests and benchmarks.

``crowdsky server`` runs as a child process (uvicorn) on 127.0.0.1 and a free port,
with its own data dir and database, so tests exercise exactly what a deployment runs:
HTTP, the process model, migrations on start and signal handling.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A running server process and how to reach it."""

    url: str
    data_dir: Path
    worker_key: str
    database_url: str | None
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False, default_factory=dict)

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
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask the server to stop (SIGTERM) and wait; kill it if it does not."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        """SIGKILL the server (a crash)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)


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
        More variables (e.g. ``CROWDSKY_JOB_LEASE_SECONDS``).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    worker_key = worker_key or secrets.token_hex(32)
    port = port or free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CROWDSKY_", "WORKER_API_KEY", "UPLOAD_EXPIRY_HOURS"))
    }
    env.update(
        {
            "CROWDSKY_DATA_DIR": str(data_dir),
            "WORKER_API_KEY": worker_key,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if database_url:
        env["CROWDSKY_DATABASE_URL"] = database_url
    env.update(extra_env or {})
    log_path = data_dir / f"server-{port}.log"
    log_file = log_path.open("wb")
    command = [
        sys.executable,
        "-m",
        "crowdsky",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    if workers > 1:
        command += ["--workers", str(workers)]
    process = subprocess.Popen(
        command, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=data_dir
    )
    log_file.close()
    server = LiveServer(
        url=f"http://127.0.0.1:{port}",
        data_dir=data_dir,
        worker_key=worker_key,
        database_url=database_url,
        process=process,
        log_path=log_path,
        env=env,
    )
    _wait_until_ready(server)
    return server


def _wait_until_ready(server: LiveServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"server did not become ready in {START_TIMEOUT_S} s:\n{server.log()}")
