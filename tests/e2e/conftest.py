"""End-to-end fixtures for the worker: a real server, a real WebDAV share, real worker processes.

Everything listens on 127.0.0.1. Frames come from the simulator and go in through the
real upload API (HTTP Basic as a user created in the server's database); the worker
runs as ``python -m crowdsky.worker`` (or ``crowdsky worker``) with its configuration
in the environment only, exactly as under systemd.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from crowdsky.accounts.users import create_user
from crowdsky.db import create_db_engine, make_session_factory
from crowdsky.db.models import JobAttempt, RawFile, StackedFrame, StackingJob
from crowdsky.db.types import utcnow
from tests.support.live_server import LiveServer, start_live_server
from tests.support.webdav_server import WebDavServer

USERNAME = "e2e-astronomer"
PASSWORD = "e2e-password-placeholder"
#: Half-size S50 frames keep the suite fast; the benchmark uses full-size frames.
FRAME_SHAPE = (540, 960)
WORKER_VARIABLE_PREFIXES = (
    "API_BASE_URL",
    "WORKER_",
    "UCLOUD_",
    "POLL_INTERVAL",
    "WORK_DIR",
    "MAX_WORKERS",
    "RESULT_STORE",
    "LOCAL_RESULTS_DIR",
    "SHUTDOWN_TIMEOUT",
    "DOWNLOAD_CONCURRENCY",
    "HEARTBEAT_INTERVAL",
    "LOG_LEVEL",
)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def simulate_chunk(
    root: Path, seed: int, minute: int, n_frames: int = 4, shape: tuple[int, int] = (270, 480)
) -> list[Path]:
    """Small simulated frames of one chunk (its 15-minute slot chosen by ``minute``)."""
    from crowdsky.simulate import SequenceSpec, simulate_sequence

    out = root / f"frames-{seed}"
    start = datetime(2025, 3, 27, 2, 0, 5, tzinfo=UTC) + timedelta(minutes=minute)
    simulate_sequence(out, SequenceSpec(n_frames=n_frames, seed=seed, shape=shape, start=start))
    return sorted(out.glob("*.fit"))


@dataclass
class Deployment:
    """One server, its database and a user account; helpers to feed and inspect it."""

    server: LiveServer
    database_url: str
    root: Path

    def create_user(self) -> None:
        engine = create_db_engine(self.database_url)
        try:
            with make_session_factory(engine)() as session:
                create_user(
                    session,
                    utcnow(),
                    username=USERNAME,
                    email="e2e@example.org",
                    password=PASSWORD,
                )
        finally:
            engine.dispose()

    def upload(self, frames: list[Path]) -> list[int]:
        """Upload frames through ``raw_upload.php`` (start, file..., finalize); job ids."""
        with httpx.Client(base_url=self.server.url, auth=(USERNAME, PASSWORD), timeout=60) as c:
            start = c.post("/api/raw_upload.php", params={"action": "start"})
            start.raise_for_status()
            token = start.json()["session_token"]
            for path in frames:
                with open(path, "rb") as fh:
                    reply = c.post(
                        "/api/raw_upload.php",
                        params={"action": "file"},
                        data={"session_token": token},
                        files={"file": (path.name, fh, "application/octet-stream")},
                    )
                assert reply.status_code == 200, reply.text
            done = c.post(
                "/api/raw_upload.php",
                params={"action": "finalize"},
                data={"session_token": token},
            )
            assert done.status_code == 200, done.text
            return [int(j) for j in done.json()["job_ids"]]

    def simulate_and_upload(
        self, n_frames: int, *, seed: int, minute: int = 0, shape: tuple[int, int] = FRAME_SHAPE
    ) -> tuple[int, list[Path]]:
        """Simulate one chunk's frames (15-min slot chosen by ``minute``), upload; (job, frames)."""
        from crowdsky.simulate import SequenceSpec, simulate_sequence

        out = self.root / f"frames-{seed}"
        kwargs: dict[str, Any] = {"n_frames": n_frames, "seed": seed, "shape": shape}
        if minute:
            # a later 15-minute slot, so every call makes a chunk of its own
            kwargs["start"] = datetime(2025, 3, 27, 2, 0, 5, tzinfo=UTC) + timedelta(minutes=minute)
        simulate_sequence(out, SequenceSpec(**kwargs))
        frames = sorted(out.glob("*.fit"))
        job_ids = self.upload(frames)
        assert len(job_ids) == 1, job_ids
        return job_ids[0], frames

    def job(self, job_id: int) -> dict[str, Any]:
        """The job row and its stacked-frame row (if any) as plain dicts."""
        engine = create_db_engine(self.database_url)
        try:
            with make_session_factory(engine)() as session, session.begin():
                job = session.get(StackingJob, job_id)
                assert job is not None
                row = {c.name: getattr(job, c.name) for c in StackingJob.__table__.columns}
                stacked = session.execute(
                    select(StackedFrame).where(StackedFrame.stacking_job_id == job_id)
                ).scalar_one_or_none()
                row["stacked"] = (
                    None
                    if stacked is None
                    else {c.name: getattr(stacked, c.name) for c in StackedFrame.__table__.columns}
                )
                raws = session.execute(
                    select(RawFile).where(RawFile.stacking_job_id == job_id)
                ).scalars()
                row["attempt_history"] = [
                    (a.outcome, a.error_message)
                    for a in session.execute(
                        select(JobAttempt)
                        .where(JobAttempt.stacking_job_id == job_id)
                        .order_by(JobAttempt.attempt)
                    ).scalars()
                ]
                row["raw_paths"] = [
                    (self.server.data_dir / "uploads" / r.storage_path, r.is_deleted) for r in raws
                ]
                return row
        finally:
            engine.dispose()


@dataclass
class WorkerProcess:
    """A worker child process (``python -m crowdsky.worker``) and its JSON log."""

    process: subprocess.Popen[bytes]
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    def wait(self, timeout: float = 120) -> int:
        return self.process.wait(timeout=timeout)

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        """Parsed JSON log lines (non-JSON lines are skipped)."""
        out = []
        for line in self.log().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Like :func:`wait_until`, but fail at once (with the log) if the worker exits."""

        def check() -> Any:
            value = predicate()
            if not value and self.process.poll() is not None:
                raise AssertionError(
                    f"worker exited with {self.process.returncode} while waiting for {what}:\n"
                    + self.log()[-4000:]
                )
            return value

        return wait_until(check, timeout, what)

    def has_event(self, name: str, **fields: Any) -> bool:
        return any(
            e.get("event") == name and all(e.get(k) == v for k, v in fields.items())
            for e in self.events()
        )


@dataclass
class WorkerLauncher:
    """Starts worker processes against one deployment and one share."""

    deployment: Deployment
    share: WebDavServer
    root: Path
    processes: list[WorkerProcess] = field(default_factory=list)

    def env(self, worker_id: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(WORKER_VARIABLE_PREFIXES)}
        env.update(
            {
                "API_BASE_URL": self.deployment.server.api_url,
                "WORKER_API_KEY": self.deployment.server.worker_key,
                "UCLOUD_WEBDAV_URL": self.share.legacy_url,
                "UCLOUD_SHARE_TOKEN": self.share.token,
                "UCLOUD_BASE_PATH": "/crowdsky",
                "WORKER_ID": worker_id,
                "POLL_INTERVAL": "0.5",
                "WORK_DIR": str(self.root / f"work-{worker_id}"),
                "MAX_WORKERS": "2",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra)
        return env

    def start(self, worker_id: str, *args: str, cli: bool = False, **extra: str) -> WorkerProcess:
        log_path = self.root / f"worker-{worker_id}-{len(self.processes)}.log"
        command = (
            [sys.executable, "-m", "crowdsky", "worker", *args]
            if cli
            else [sys.executable, "-m", "crowdsky.worker", *args]
        )
        cwd = self.root / f"cwd-{worker_id}"
        cwd.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [*command, "--json-logs"],
                env=self.env(worker_id, **extra),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
            )
        worker = WorkerProcess(process, log_path)
        self.processes.append(worker)
        return worker

    def run_once(self, worker_id: str, timeout: float = 180, **extra: str) -> WorkerProcess:
        worker = self.start(worker_id, "--once", **extra)
        worker.wait(timeout)
        return worker

    def stop_all(self) -> None:
        for worker in self.processes:
            worker.terminate()
        for worker in self.processes:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()


def start_deployment(root: Path, extra_env: Mapping[str, str] | None = None) -> Deployment:
    """A server with a migrated SQLite database and the e2e user."""
    data_dir = root / "server-data"
    # no re-stack window unless a test opens one: the tests check that a completed
    # job's raws go at once (tests/e2e/test_slot_restack.py keeps them)
    env = {
        "CROWDSKY_RETRY_BACKOFF_SECONDS": "0",
        "CROWDSKY_RESTACK_WINDOW_HOURS": "0",
        **(extra_env or {}),
    }
    server = start_live_server(data_dir, extra_env=env)
    url = f"sqlite:///{(data_dir / 'crowdsky.sqlite3').resolve()}"
    deployment = Deployment(server, url, root)
    deployment.create_user()
    return deployment


@pytest.fixture
def share(tmp_path: Path) -> Iterator[WebDavServer]:
    """A Nextcloud-like public share (wsgidav) for one test."""
    server = WebDavServer(tmp_path / "share")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """A fresh server process for one test."""
    d = start_deployment(tmp_path)
    yield d
    d.server.stop()


@pytest.fixture
def workers(
    tmp_path: Path, deployment: Deployment, share: WebDavServer
) -> Iterator[WorkerLauncher]:
    """Launches worker processes; stops any still running at the end."""
    launcher = WorkerLauncher(deployment, share, tmp_path)
    yield launcher
    launcher.stop_all()
