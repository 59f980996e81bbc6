"""``crowdsky demo``: the whole service on one machine, through its production code paths.

A server process (embedded SQLite, local storage) and a worker process start in the
background; a demo user is created; a simulated Seestar night (or the frames of
``--frames DIR``) is uploaded through the real upload API with the real upload client;
the worker claims, stacks and publishes every chunk over HTTP; the demo follows the
jobs live and ends with a table of the stacks, then shuts everything down (or keeps
the server running with ``--serve``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from astropy.io import fits

from crowdsky import launch

POLL_INTERVAL_S = 0.5
DEFAULT_TIMEOUT_S = 1800.0
TERMINAL = {"completed", "failed"}
DEMO_USER = "demo"


@dataclass(frozen=True)
class DemoOptions:
    """What the demo runs on."""

    root: Path
    frames_dir: Path | None = None
    scale: str = "full"
    seed: int = 2025
    serve: bool = False
    port: int | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class StackRow:
    """One line of the final table."""

    job_id: int
    chunk_key: str
    object_name: str | None
    status: str
    frames_used: int | None
    frames_total: int
    rejected: tuple[str, ...]
    stars: int | None
    exposure_s: float | None
    seconds: float | None
    fits_path: Path | None
    thumbnail_path: Path | None
    error: str | None


@dataclass
class DemoRun:
    """Where a demo run keeps everything, and what it produced."""

    run_dir: Path
    server_url: str = ""
    username: str = DEMO_USER
    password: str = ""
    rows: list[StackRow] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def server_dir(self) -> Path:
        return self.run_dir / "server"

    @property
    def results_dir(self) -> Path:
        return self.run_dir / "results"

    @property
    def work_dir(self) -> Path:
        return self.run_dir / "work"


class DemoError(RuntimeError):
    """The demo could not complete; the message says which step failed."""


Reporter = Callable[[str], None]


def new_run_dir(root: Path) -> Path:
    """A fresh folder for one demo run under ``root``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = root.resolve() / f"run-{stamp}-{secrets.token_hex(2)}"
    run_dir.mkdir(parents=True)
    return run_dir


def prepare_frames(options: DemoOptions, run: DemoRun, report: Reporter) -> Path:
    """The folder to upload: the given frames, or a freshly simulated night."""
    if options.frames_dir is not None:
        frames = options.frames_dir.resolve()
        if not frames.is_dir():
            raise DemoError(f"--frames {frames} is not a folder")
        return frames
    from crowdsky.simulate import simulate_night

    frames = run.run_dir / "night"
    report(f"simulating a Seestar S50 night ({options.scale}) in {frames}")
    night = simulate_night(frames, seed=options.seed, scale=options.scale)
    kinds = sorted({f.kind for f in night.frames if f.kind != "normal"})
    report(
        f"  {len(night.frames)} frames of {len(night.sequences)} targets"
        + (f", including {', '.join(kinds)} frames" if kinds else "")
    )
    return frames


def create_demo_user(run: DemoRun) -> None:
    """Create the demo account in the server's database (as ``crowdsky user create`` does)."""
    from crowdsky.accounts import create_user
    from crowdsky.db import create_db_engine, make_session_factory
    from crowdsky.db.types import utcnow

    run.password = secrets.token_urlsafe(12)
    engine = create_db_engine(f"sqlite:///{run.server_dir / 'crowdsky.sqlite3'}")
    try:
        with make_session_factory(engine)() as session:
            create_user(
                session,
                utcnow(),
                username=run.username,
                email=f"{run.username}@example.invalid",
                password=run.password,
            )
    finally:
        engine.dispose()


def start_services(
    run: DemoRun, options: DemoOptions
) -> tuple[launch.ManagedProcess, launch.ManagedProcess]:
    """Start the server, create the demo user, start the worker."""
    key = secrets.token_hex(32)
    run.server_dir.mkdir(parents=True, exist_ok=True)
    server_env = launch.clean_environment(
        {
            "CROWDSKY_DATA_DIR": str(run.server_dir),
            "WORKER_API_KEY": key,
            "CROWDSKY_RETRY_BACKOFF_SECONDS": "2",
            # the web app serves stacks from the worker's local result store
            "CROWDSKY_RESULTS_DIR": str(run.results_dir),
            "CROWDSKY_ADMIN_USERS": DEMO_USER,
        }
    )
    server, url = launch.start_server(run.server_dir, env=server_env, port=options.port)
    try:
        run.server_url = url
        create_demo_user(run)
        worker_env = launch.clean_environment(
            {
                "API_BASE_URL": f"{url}/api",
                "WORKER_API_KEY": key,
                "WORKER_ID": "demo-worker",
                "POLL_INTERVAL": "1",
                "WORK_DIR": str(run.work_dir),
                "RESULT_STORE": "local",
                "LOCAL_RESULTS_DIR": str(run.results_dir),
                "MAX_WORKERS": "1",
            }
        )
        worker = launch.start_process(
            "worker",
            ["worker"],
            env=worker_env,
            log_path=run.run_dir / "worker.log",
            cwd=run.run_dir,
        )
    except BaseException:
        # the caller never gets hold of the server: stop it here, or it outlives the demo
        server.stop()
        raise
    return server, worker


def upload_frames(run: DemoRun, frames: Path, report: Reporter) -> list[int]:
    """Upload every folder of FITS files under ``frames`` with the real client.

    Each folder (the frames dir itself, or one per target as a Seestar stores them) is
    one upload session, finalized into jobs. Returns the ids of the jobs created.
    """
    from crowdsky.upload_client import UploadClient, UploadError, find_fits_files, upload_folder

    folders = [
        f
        for f in [frames, *sorted(p for p in frames.iterdir() if p.is_dir())]
        if find_fits_files(f)
    ]
    if not folders:
        raise DemoError(f"no FITS files (.fit, .fits) in {frames} or its sub-folders")
    job_ids: list[int] = []
    with UploadClient(run.server_url, username=run.username, password=run.password) as client:
        for folder in folders:
            try:
                result = upload_folder(client, folder)
            except UploadError as exc:
                raise DemoError(f"uploading {folder} failed: {exc}") from exc
            finalize = result.finalize
            job_ids += [int(j) for j in finalize.get("job_ids", [])]
            run.skipped += list(finalize.get("skipped", []))
            refused = result.failed
            report(
                f"  {folder.name}: {result.count('uploaded')} files uploaded, "
                f"{len(finalize.get('job_ids', []))} jobs"
                + (f", {len(refused)} files refused" if refused else "")
            )
            for outcome in refused:
                report(f"    refused {outcome.path.name}: {outcome.error}")
    return job_ids


def wait_for_jobs(
    run: DemoRun,
    worker: launch.ManagedProcess,
    on_update: Callable[[list[dict[str, Any]]], None],
    timeout_s: float,
) -> list[dict[str, Any]]:
    """Poll the demo user's job list until every job is completed or failed."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(
        base_url=run.server_url, auth=(run.username, run.password), timeout=30.0
    ) as client:
        while True:
            response = client.get("/api/my_jobs.php", params={"limit": 1000})
            response.raise_for_status()
            jobs: list[dict[str, Any]] = response.json()["jobs"]
            on_update(jobs)
            if jobs and all(job["status"] in TERMINAL for job in jobs):
                return jobs
            if not worker.alive:
                raise DemoError(f"the worker stopped unexpectedly:\n{worker.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise DemoError(f"jobs did not finish within {timeout_s:.0f} s")
            time.sleep(POLL_INTERVAL_S)


def summarize(run: DemoRun, jobs: list[dict[str, Any]]) -> list[StackRow]:
    """One row per job, with rejected frames read from each stack's FRAMES table."""
    rows = []
    for job in jobs:
        stack = job.get("stack")
        fits_path = thumb_path = None
        rejected: tuple[str, ...] = ()
        seconds = None
        if job.get("started_at") and job.get("completed_at"):
            seconds = (_parse(job["completed_at"]) - _parse(job["started_at"])).total_seconds()
        if stack:
            fits_path = _local(run, stack["ucloud_path"])
            thumb_path = _local(run, stack["thumbnail_path"]) if stack["thumbnail_path"] else None
            rejected = rejected_frames(fits_path)
        rows.append(
            StackRow(
                job_id=job["job_id"],
                chunk_key=job["chunk_key"],
                object_name=job["object_name"],
                status=job["status"],
                frames_used=stack["n_frames_aligned"] if stack else None,
                frames_total=stack["n_frames_input"] if stack else job["frame_count"],
                rejected=rejected,
                stars=stack["n_stars_detected"] if stack else None,
                exposure_s=stack["total_exptime"] if stack else None,
                seconds=seconds,
                fits_path=fits_path,
                thumbnail_path=thumb_path,
                error=job.get("error_message") if job["status"] != "completed" else None,
            )
        )
    run.rows = rows
    return rows


def rejected_frames(fits_path: Path | None) -> tuple[str, ...]:
    """``file: reason`` for every frame the stack left out, from its FRAMES table."""
    if fits_path is None or not fits_path.is_file():
        return ()
    with fits.open(fits_path, memmap=False) as hdul:
        if "FRAMES" not in hdul:
            return ()
        table = hdul["FRAMES"].data
        accepted = np.asarray(table["ACCEPTED"], dtype=bool)
        names = table["FILENAME"]
        reasons = table["REASON"]
        return tuple(
            f"{str(names[i]).strip()}: {str(reasons[i]).strip()}" for i in np.flatnonzero(~accepted)
        )


def kept_raw_frames(run: DemoRun) -> int:
    """Raw frames still in the server's buffer (kept for the re-stack window)."""
    uploads = run.server_dir / "uploads"
    return sum(1 for p in uploads.rglob("*") if p.suffix.lower() in (".fit", ".fits"))


def check_stack(fits_path: Path) -> None:
    """Raise when a produced stack is not a valid CrowdSky output file."""
    with fits.open(fits_path) as hdul:
        hdul.verify("exception")
        for name in ("RED", "GREEN", "BLUE", "FOOTPRINT", "FRAMES"):
            if name not in hdul:
                raise DemoError(f"{fits_path}: extension {name} is missing")
        if not np.isfinite(hdul["GREEN"].data).any():
            raise DemoError(f"{fits_path}: the GREEN plane has no finite pixel")


def _local(run: DemoRun, share_path: str) -> Path:
    from crowdsky.storage.result_store import LocalResultStore

    return LocalResultStore(run.results_dir).path_for(share_path)


def web_login(run: DemoRun) -> str:
    """Log the demo user in to the web app as a browser would (form, CSRF, cookie).

    Returns the URL of the stacks page; raises :class:`DemoError` when the login fails.
    """
    import re

    with httpx.Client(base_url=run.server_url, timeout=30.0) as client:
        form = client.get("/login")
        match = re.search(r'name="csrf-token" content="([^"]+)"', form.text)
        if form.status_code != 200 or match is None:
            raise DemoError(f"the web app's login page did not load ({form.status_code})")
        reply = client.post(
            "/login",
            data={"csrf_token": match.group(1), "login": run.username, "password": run.password},
        )
        if reply.status_code != 303 or "crowdsky_session" not in reply.cookies:
            raise DemoError(f"logging in to the web app failed ({reply.status_code})")
        stacks = client.get("/web/api/stacks")
        if stacks.status_code != 200:
            raise DemoError(f"the web app did not list the stacks ({stacks.status_code})")
    return f"{run.server_url}/stacks"


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
