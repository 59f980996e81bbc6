"""Whole worker jobs through real processes on loopback: claim -> complete_job, per step.

Starts a real ``crowdsky server`` (uvicorn, SQLite), a wsgidav process emulating a
Nextcloud public share (legacy endpoint, token user, X-Requested-With enforced) and
one worker daemon (``python -m crowdsky.worker``, MAX_WORKERS=1). For each chunk size,
simulated full-size Seestar S50 frames (1080 x 1920 GRBG, ~4 MB) are uploaded through
the upload API, the worker processes the job, and the timings come from the worker's
``job_completed`` log event: seconds from the end of the claim to the end of
``complete_job``, split into download, stacking (+ thumbnail), plate solving (the
worker's solve step: solve, calibrate, rewrite the stack, star JSON), upload and report.
The simulated star fields are not real sky, so their solve is a (fast) refusal; the
time of a real solve is in ``bench/bench_plate_solve.py``.

Usage (from the repository root)::

    .venv/bin/python bench/bench_worker.py --sizes 15 90 --runs 3

Prints a Markdown table (median of the runs) and writes the raw figures as JSON to
``bench/results/worker.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.live_server import start_live_server  # noqa: E402
from tests.support.webdav_server import WebDavServer  # noqa: E402

USER = "bench-user"
PASSWORD = "bench-password-placeholder"
FULL_SHAPE = (1080, 1920)


def create_user(data_dir: Path) -> None:
    from crowdsky.accounts.users import create_user as make_user
    from crowdsky.db import create_db_engine, make_session_factory
    from crowdsky.db.types import utcnow

    engine = create_db_engine(f"sqlite:///{(data_dir / 'crowdsky.sqlite3').resolve()}")
    try:
        with make_session_factory(engine)() as session:
            make_user(
                session, utcnow(), username=USER, email="bench@example.org", password=PASSWORD
            )
    finally:
        engine.dispose()


def simulate(out: Path, n_frames: int, slot: int, shape: tuple[int, int]) -> list[Path]:
    """One chunk of ``n_frames`` frames inside its own 15-minute slot."""
    from crowdsky.simulate import Observation, SequenceSpec, simulate_sequence

    start = datetime(2025, 3, 27, 0, 0, 2, tzinfo=UTC) + timedelta(minutes=15 * slot)
    # 90 subs only fit a 15-minute slot at a cadence under 10 s.
    spec = SequenceSpec(
        n_frames=n_frames,
        seed=1000 + slot,
        shape=shape,
        start=start,
        cadence_s=9.8,
        observation=Observation(exptime_s=8.0),
    )
    simulate_sequence(out, spec)
    return sorted(out.glob("*.fit"))


def upload(url: str, frames: list[Path]) -> int:
    with httpx.Client(base_url=url, auth=(USER, PASSWORD), timeout=120) as client:
        token = client.post("/api/raw_upload.php", params={"action": "start"}).json()[
            "session_token"
        ]
        for path in frames:
            with open(path, "rb") as fh:
                reply = client.post(
                    "/api/raw_upload.php",
                    params={"action": "file"},
                    data={"session_token": token},
                    files={"file": (path.name, fh, "application/octet-stream")},
                )
            reply.raise_for_status()
        done = client.post(
            "/api/raw_upload.php", params={"action": "finalize"}, data={"session_token": token}
        )
        done.raise_for_status()
        job_ids = done.json()["job_ids"]
        if len(job_ids) != 1:
            raise RuntimeError(f"expected one job, got {done.json()}")
        return int(job_ids[0])


def wait_for_completion(log_path: Path, job_id: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("job_id") != job_id:
                continue
            if event.get("event") == "job_completed":
                return dict(event)
            if event.get("event") == "job_failed":
                raise RuntimeError(f"job {job_id} failed: {event.get('error')}")
        time.sleep(0.2)
    raise RuntimeError(f"job {job_id} did not complete within {timeout} s")


def start_worker(root: Path, api_url: str, key: str, share: WebDavServer) -> tuple[Any, Path]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("API_BASE_URL", "WORKER_", "UCLOUD_", "WORK_DIR", "MAX_WORKERS"))
    }
    env.update(
        {
            "API_BASE_URL": api_url,
            "WORKER_API_KEY": key,
            "UCLOUD_WEBDAV_URL": share.legacy_url,
            "UCLOUD_SHARE_TOKEN": share.token,
            "WORKER_ID": "bench-worker",
            "POLL_INTERVAL": "0.2",
            "WORK_DIR": str(root / "work"),
            "MAX_WORKERS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    log_path = root / "worker.log"
    cwd = root / "worker-cwd"
    cwd.mkdir()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "crowdsky.worker", "--json-logs"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
    return process, log_path


def summarise(size: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float:
        return statistics.median(float(r[key]) for r in runs)

    total = median("total_s")
    stack = median("stack_s") + median("thumbnail_s")
    return {
        "frames": size,
        "runs": len(runs),
        "total_s": total,
        "download_s": median("download_s"),
        "solve_s": statistics.median(float(r.get("solve_s", 0.0)) for r in runs),
        "stack_s": stack,
        "upload_s": median("upload_s"),
        "report_s": median("report_s"),
        "mb_in": median("bytes_downloaded") / 1e6,
        "mb_out": median("bytes_uploaded") / 1e6,
        "aligned": statistics.median(int(r["n_frames_aligned"]) for r in runs),
        "all_totals": [round(float(r["total_s"]), 2) for r in runs],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[15, 90])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--half", action="store_true", help="540 x 960 frames (quick check)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "worker.json")
    args = parser.parse_args(argv)
    shape = (540, 960) if args.half else FULL_SHAPE

    with tempfile.TemporaryDirectory(prefix="crowdsky-bench-worker-") as tmp:
        root = Path(tmp)
        share = WebDavServer(root / "share")
        share.start()
        server = start_live_server(root / "server", extra_env={"CROWDSKY_MIN_CHUNK_FRAMES": "3"})
        worker = None
        try:
            create_user(server.data_dir)
            worker, log_path = start_worker(root, server.api_url, server.worker_key, share)
            results: dict[int, list[dict[str, Any]]] = {}
            slot = 0
            for size in args.sizes:
                for run in range(args.runs):
                    slot += 1
                    frames = simulate(root / f"frames-{slot}", size, slot, shape)
                    job_id = upload(server.url, frames)
                    event = wait_for_completion(log_path, job_id, timeout=900)
                    event["load_1min"] = os.getloadavg()[0]
                    results.setdefault(size, []).append(event)
                    print(
                        f"{size:3d} frames run {run + 1}: total {event['total_s']:.2f} s "
                        f"(download {event['download_s']:.2f}, stack {event['stack_s']:.2f}, "
                        f"upload {event['upload_s']:.2f}; load {event['load_1min']:.1f})",
                        flush=True,
                    )
                    for path in frames:
                        path.unlink()
        finally:
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
            server.stop()
            share.stop()

    rows = [summarise(size, runs) for size, runs in results.items()]
    print()
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Machine: {machine}, Python {platform.python_version()}, load average now {load}")
    print(f"Frames: simulated S50 {shape[1]} x {shape[0]}, median of {args.runs} runs")
    print()
    print(
        "| frames | claim → complete_job (s) | download | stacking + thumbnail | solve "
        "| upload | report | MB in / out | aligned |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        t = r["total_s"]

        def share(key: str, r: dict[str, Any] = r, t: float = t) -> str:
            return f"{r[key]:.2f} s ({100 * r[key] / t:.0f} %)"

        print(
            f"| {r['frames']} | {t:.2f} | {share('download_s')} | {share('stack_s')}"
            f" | {share('solve_s')} | {share('upload_s')} | {r['report_s']:.2f} s"
            f" | {r['mb_in']:.0f} / {r['mb_out']:.1f} | {r['aligned']:.0f} |"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"shape": shape, "summary": rows, "runs": results}, indent=2, default=str)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
