"""Test doubles for the worker: an in-memory worker API behind httpx.MockTransport,
a fake stacker and a fake thumbnailer (injected, never monkeypatched)."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from astropy.io import fits

from crowdsky.worker.retry import RetryPolicy

API = "http://crowdsky.test/api"
KEY = "test-worker-key-0123456789"


def no_wait_retry(attempts: int = 3) -> RetryPolicy:
    """A retry policy that does not sleep."""
    return RetryPolicy(attempts=attempts, base_delay_seconds=0.0, sleep=lambda s: None)


def fits_bytes(seed: int = 0, shape: tuple[int, int] = (16, 16)) -> bytes:
    """A small valid FITS file."""
    data = (np.random.default_rng(seed).random(shape) * 1000).astype(np.uint16)
    buf = io.BytesIO()
    hdu = fits.PrimaryHDU(data)
    hdu.header["DATE-OBS"] = "2025-01-15T19:30:00"
    hdu.header["EXPTIME"] = 10.0
    hdu.writeto(buf)
    return buf.getvalue()


@dataclass
class FakeJob:
    job_id: int
    files: dict[int, bytes]
    user_id: int = 1
    chunk_key: str = "20250115.78_83.6_+22.0"
    object_name: str | None = "M42"
    status: str = "pending"
    attempts: int = 0
    lease_token: str = ""
    error_messages: list[str] = field(default_factory=list)
    completed: dict[str, Any] | None = None
    progress: list[float] = field(default_factory=list)


class FakeWorkerApi:
    """The worker API in memory; ``transport`` plugs it into an ApiClient.

    Knobs: ``down`` (every request raises ConnectError), ``next_job_errors`` (that many
    claims answer 503), ``heartbeat_status`` (e.g. 409), ``truncate_downloads``,
    ``lose_lease_after_heartbeats``.
    """

    def __init__(self, key: str = KEY) -> None:
        self.key = key
        self.jobs: dict[int, FakeJob] = {}
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.down = False
        self.next_job_errors = 0
        self.heartbeat_status = 200
        self.truncate_downloads = False
        self.lease_seconds = 60
        self.download_delay = 0.0
        #: what complete_job answers as the replaced stacks' files
        self.replaced_files: list[str] = []
        self.transport = httpx.MockTransport(self.handle)

    def add_job(self, job_id: int, n_files: int = 3, **kwargs: Any) -> FakeJob:
        files = {job_id * 100 + i: fits_bytes(job_id * 100 + i) for i in range(n_files)}
        job = FakeJob(job_id, files, **kwargs)
        self.jobs[job_id] = job
        return job

    def paths(self, name: str) -> list[dict[str, Any]]:
        return [body for method, path, body in self.calls if path.endswith(name)]

    # -- handler ---------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return httpx.Response(401, json={"error": "Unauthorized."})
        path = request.url.path.rsplit("/", 1)[-1]
        body: dict[str, Any] = {}
        if request.method == "POST":
            body = json.loads(request.content or b"{}")
        with self.lock:
            self.calls.append((request.method, path, body or dict(request.url.params)))
            handler = getattr(self, "_" + path.replace(".php", ""), None)
            if handler is None:
                return httpx.Response(404, json={"error": "Not found."})
            return handler(request, body)

    def _held(self, body: dict[str, Any]) -> FakeJob | httpx.Response:
        job = self.jobs.get(int(body["job_id"]))
        if job is None:
            return httpx.Response(404, json={"error": "No such job."})
        if job.status != "processing" or body.get("lease_token") != job.lease_token:
            return httpx.Response(409, json={"error": "Job is not held by this worker."})
        return job

    def _next_job(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if self.next_job_errors > 0:
            self.next_job_errors -= 1
            return httpx.Response(503, json={"error": "busy"})
        for job in sorted(self.jobs.values(), key=lambda j: j.job_id):
            if job.status in ("pending", "retry"):
                job.status = "processing"
                job.attempts += 1
                job.lease_token = f"lease-{job.job_id}-{job.attempts}"
                return httpx.Response(
                    200,
                    json={
                        "job_id": job.job_id,
                        "user_id": job.user_id,
                        "upload_session_id": 7,
                        "chunk_key": job.chunk_key,
                        "object_name": job.object_name,
                        "frame_count": len(job.files),
                        "session_ucloud_path": "sess_x",
                        "lease_token": job.lease_token,
                        "lease_expires_at": "2030-01-01T00:00:00Z",
                        "lease_seconds": self.lease_seconds,
                    },
                )
        return httpx.Response(204)

    def _job_files(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        job = self.jobs.get(int(request.url.params["job_id"]))
        if job is None:
            return httpx.Response(404, json={"error": "No such job."})
        files = [
            {
                "id": str(fid),
                "filename": f"Seestar_{fid}.fit",
                "ucloud_path": f"sess_x/Seestar_{fid}.fit",
                "file_size_bytes": str(len(data)),
                "fits_date_obs": "2025-01-15 19:30:00",
                "fits_exptime": "10",
                "fits_ra": "83.633",
                "fits_dec": "22.014",
            }
            for fid, data in job.files.items()
        ]
        return httpx.Response(
            200, json={"job_id": job.job_id, "chunk_key": job.chunk_key, "files": files}
        )

    def _download_raw(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        fid = int(request.url.params["file_id"])
        if self.download_delay:
            time.sleep(self.download_delay)
        for job in self.jobs.values():
            if fid in job.files:
                data = job.files[fid]
                if self.truncate_downloads:
                    data = data[: len(data) // 2]
                return httpx.Response(200, content=data)
        return httpx.Response(404, json={"error": "File not found."})

    def _heartbeat(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if self.heartbeat_status != 200:
            return httpx.Response(self.heartbeat_status, json={"error": "lease lost"})
        job = self._held(body)
        if isinstance(job, httpx.Response):
            return job
        job.progress.append(float(body.get("progress", 0)))
        return httpx.Response(200, json={"ok": True, "lease_expires_at": "2030-01-01T00:00:00Z"})

    def _complete_job(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        job = self._held(body)
        if isinstance(job, httpx.Response):
            return job
        job.status = "completed"
        job.completed = body
        return httpx.Response(200, json={"ok": True, "replaced_files": self.replaced_files})

    def _fail_job(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        job = self._held(body)
        if isinstance(job, httpx.Response):
            return job
        job.error_messages.append(body["error_message"])
        job.status = "failed" if job.attempts >= 3 else "retry"
        return httpx.Response(200, json={"ok": True, "status": job.status})


@dataclass
class FakeStackResult:
    output_path: Path
    n_frames_input: int
    n_aligned: int
    n_stars_detected: int | None = 42
    total_exptime: float = 0.0
    date_obs_start: datetime | None = datetime(2025, 1, 15, 19, 30, tzinfo=UTC)
    date_obs_end: datetime | None = datetime(2025, 1, 15, 19, 44, 30, tzinfo=UTC)
    ra_deg: float | None = 83.633
    dec_deg: float | None = 22.014
    frames: tuple[Any, ...] = ()


class FakeStacker:
    """Writes a small file and reports one frame fewer aligned than given."""

    def __init__(
        self,
        *,
        error: Exception | None = None,
        delay: float = 0.0,
        on_call: Callable[[], None] | None = None,
    ) -> None:
        self.error = error
        self.delay = delay
        self.on_call = on_call
        self.calls: list[list[Path]] = []

    def __call__(
        self,
        fits_paths: Sequence[Path],
        output_path: Path,
        method: str = "mean",
        sigma_clip: float = 3.0,
        *,
        progress: Callable[[float, str], None] | None = None,
    ) -> FakeStackResult:
        self.calls.append(list(fits_paths))
        for p in fits_paths:
            assert Path(p).is_file()
        if self.on_call is not None:
            self.on_call()
        steps = 10
        for i in range(steps):
            if progress is not None:
                progress((i + 1) / steps, f"step {i + 1}/{steps}")
            if self.delay:
                time.sleep(self.delay / steps)
        if self.error is not None:
            raise self.error
        Path(output_path).write_bytes(fits_bytes(99, (32, 32)))
        n = len(fits_paths)
        return FakeStackResult(Path(output_path), n, max(1, n - 1), total_exptime=10.0 * (n - 1))


def fake_thumbnailer(fits_path: Path, output_path: Path) -> Path:
    Path(output_path).write_bytes(b"\x89PNG\r\n\x1a\nfake")
    return Path(output_path)
