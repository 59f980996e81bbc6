"""Child processes of CrowdSky (server, worker), started the way a deployment runs them.

Used by ``crowdsky demo`` and by the end-to-end tests and benchmarks: each component
runs as ``python -m crowdsky ...`` in its own process, configured only through its
environment, logging to a file, and stopped with SIGTERM (then SIGKILL after a bound).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

DEFAULT_READY_TIMEOUT_S = 60.0
DEFAULT_STOP_TIMEOUT_S = 30.0
#: How long a server that never became ready gets to exit on SIGTERM before SIGKILL.
ABORT_STOP_TIMEOUT_S = 5.0
#: Variables of ours that must not leak from the caller's environment into a child.
OWN_VARIABLE_PREFIXES = (
    "CROWDSKY_",
    "WORKER_API_KEY",
    "UPLOAD_EXPIRY_HOURS",
    "CHUNK_KEY_FORMAT",
    "API_BASE_URL",
    "UCLOUD_",
    "WORKER_ID",
    "POLL_INTERVAL",
    "WORK_DIR",
    "MAX_WORKERS",
    "RESULT_STORE",
    "LOCAL_RESULTS_DIR",
)


class LaunchError(RuntimeError):
    """A child process did not start or did not become ready."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """The current environment without our own variables, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_VARIABLE_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


@dataclass
class ManagedProcess:
    """A child process with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL; returns the exit code."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        return int(self.process.returncode)

    def kill(self) -> None:
        """SIGKILL (a crash)."""
        if self.alive:
            self.process.kill()
            self.process.wait(timeout=DEFAULT_STOP_TIMEOUT_S)


def start_process(
    name: str, arguments: Sequence[str], *, env: Mapping[str, str], log_path: Path, cwd: Path
) -> ManagedProcess:
    """Run ``python -m crowdsky <arguments>`` with output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "crowdsky", *arguments],
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )
    return ManagedProcess(name, process, log_path)


def start_server(
    data_dir: Path,
    *,
    env: Mapping[str, str],
    port: int | None = None,
    log_level: str = "warning",
    workers: int = 1,
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
) -> tuple[ManagedProcess, str]:
    """Start ``crowdsky server`` on 127.0.0.1 and wait for ``/healthz``; returns (process, URL).

    The caller owns the process only once this returns: if the wait ends in anything
    else (not ready, or a ``KeyboardInterrupt`` from a SIGTERM handler while waiting),
    the server is stopped here before the exception propagates.
    """
    port = port or free_port()
    arguments = ["server", "--host", "127.0.0.1", "--port", str(port), "--log-level", log_level]
    if workers > 1:
        arguments += ["--workers", str(workers)]
    server = start_process(
        "server", arguments, env=env, log_path=data_dir / f"server-{port}.log", cwd=data_dir
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(server, url, ready_timeout_s)
    except BaseException:
        try:
            server.stop(timeout_s=ABORT_STOP_TIMEOUT_S)
        finally:
            server.kill()  # a second interrupt during stop() must not leave it running
        raise
    return server, url


def wait_until_healthy(process: ManagedProcess, url: str, timeout_s: float) -> None:
    """Poll ``<url>/healthz`` until it answers 200; raise with the log if the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process.alive:
            raise LaunchError(
                f"{process.name} exited with {process.process.returncode}:\n{process.log()}"
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise LaunchError(f"{process.name} did not become ready in {timeout_s} s:\n{process.log()}")
