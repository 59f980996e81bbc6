"""Upload intake benchmark: throughput over loopback and server memory for a 1 GB file.

Starts a real ``crowdsky server`` (uvicorn, SQLite in a temp dir) on 127.0.0.1 and
measures

1. aggregate upload throughput (MB/s) of ~4 MB Seestar-sized FITS frames with 1 and
   with 8 parallel clients (each its own connection and upload session), median of
   several runs;
2. the server process's RSS (idle after start, before, and peak during) while it
   receives one ~1 GB FITS upload (the per-file limit raised via
   ``CROWDSKY_MAX_UPLOAD_BYTES``).

Run: ``.venv/bin/python bench/bench_upload.py [--frames 48] [--runs 3] [--big-mb 1024]``
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
from astropy.io import fits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.live_server import start_live_server  # noqa: E402

from crowdsky.accounts import create_api_key, create_user  # noqa: E402
from crowdsky.db import create_db_engine, make_session_factory  # noqa: E402
from crowdsky.db.types import utcnow  # noqa: E402

URL = "/api/raw_upload.php"
FRAME_SHAPE = (1920, 1080)  # 4,147,200 data bytes + header: an S50 raw


def frame_bytes(template: bytes, serial: int) -> bytes:
    """The template frame with a unique serial in its first data bytes (unique hash)."""
    data_start = 2880
    stamp = serial.to_bytes(8, "big")
    return template[:data_start] + stamp + template[data_start + 8 :]


def make_template(folder: Path) -> bytes:
    header = fits.Header()
    header["DATE-OBS"] = "2025-03-27T01:20:15.5"
    header["EXPTIME"] = 10.0
    header["RA"], header["DEC"] = 192.72, 41.12
    header["FILTER"], header["TELESCOP"] = "IRCUT", "S50_bench"
    header["INSTRUME"], header["BAYERPAT"] = "Seestar S50", "GRBG"
    data = np.random.default_rng(0).integers(0, 60000, FRAME_SHAPE, dtype=np.uint16)
    path = folder / "template.fit"
    fits.PrimaryHDU(data, header).writeto(path)
    return path.read_bytes()


def write_big_fits(path: Path, size_mb: int) -> int:
    """A valid FITS of about ``size_mb`` MB written block by block (never in memory)."""
    width = 16384
    height = max(1, size_mb * 1024 * 1024 // (2 * width))
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = 16
    header["NAXIS"] = 2
    header["NAXIS1"] = width
    header["NAXIS2"] = height
    header["DATE-OBS"] = "2025-03-27T01:20:15.5"
    header["EXPTIME"] = 10.0
    header["RA"], header["DEC"] = 192.72, 41.12
    header["BAYERPAT"] = "GRBG"
    data_bytes = width * height * 2
    block = np.random.default_rng(1).integers(0, 255, 8 * 1024 * 1024, dtype=np.uint8).tobytes()
    with path.open("wb") as handle:
        handle.write(header.tostring().encode("ascii"))
        remaining = data_bytes
        while remaining:
            piece = block[: min(len(block), remaining)]
            handle.write(piece)
            remaining -= len(piece)
        handle.write(b"\0" * (-data_bytes % 2880))
    return path.stat().st_size


def _client_process(args: tuple[str, str, str, list[int], float]) -> int:
    """One uploading client in its own process (a thread pool would measure the GIL)."""
    base, key, template_path, indices, start_at = args
    template = Path(template_path).read_bytes()
    headers = {"Authorization": f"Bearer {key}"}
    sent = 0
    with httpx.Client(base_url=base, headers=headers, timeout=300) as http:
        token = http.post(URL, params={"action": "start"}).json()["session_token"]
        bodies = [(i, frame_bytes(template, i)) for i in indices]
        while time.time() < start_at:
            time.sleep(0.001)
        for i, body in bodies:
            r = http.post(
                URL,
                params={"action": "file"},
                data={"session_token": token},
                files={"file": (f"f{i}.fit", body, "application/fits")},
            )
            r.raise_for_status()
            assert r.json()["duplicate"] is False
            sent += len(body)
    return sent


def upload_run(
    base: str,
    key: str,
    template_path: Path,
    n_frames: int,
    clients: int,
    serial0: int,
    server_pid: int,
) -> tuple[float, float]:
    """Upload ``n_frames`` frames with ``clients`` client processes.

    Returns the aggregate MB/s and the server's CPU seconds per GB received.
    """
    per_client = [[serial0 + i for i in range(c, n_frames, clients)] for c in range(clients)]
    start_at = time.time() + 2.0  # every client ready (bodies built) before the clock starts
    server = psutil.Process(server_pid)
    with mp.Pool(clients) as pool:
        pending = pool.map_async(
            _client_process, [(base, key, str(template_path), ix, start_at) for ix in per_client]
        )
        while time.time() < start_at:
            time.sleep(0.0005)
        cpu0 = sum(server.cpu_times()[:2])
        started = time.perf_counter()
        total = sum(pending.get())
        elapsed = time.perf_counter() - started
        cpu = sum(server.cpu_times()[:2]) - cpu0
    return total / 1e6 / elapsed, cpu / (total / 1e9)


def big_upload(base: str, key: str, path: Path, pid: int) -> tuple[float, float, float]:
    """Upload one big file; returns (server RSS before, its peak during, in MB; MB/s)."""
    process = psutil.Process(pid)
    baseline = process.memory_info().rss
    peak = baseline
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    headers = {"Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=600) as http:
            token = http.post(URL, params={"action": "start"}).json()["session_token"]
            with path.open("rb") as handle:
                r = http.post(
                    URL,
                    params={"action": "file"},
                    data={"session_token": token},
                    files={"file": (path.name, handle, "application/fits")},
                )
            r.raise_for_status()
    finally:
        stop.set()
        sampler.join()
    elapsed = time.perf_counter() - started
    return baseline / 1e6, peak / 1e6, path.stat().st_size / 1e6 / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crowdsky-bench-upload-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        server = start_live_server(
            data_dir,
            extra_env={
                "CROWDSKY_MAX_UPLOAD_BYTES": str((args.big_mb + 64) * 1024 * 1024),
                "CROWDSKY_CLEANUP_INTERVAL_SECONDS": "0",
            },
        )
        try:
            idle_mb = psutil.Process(server.process.pid).memory_info().rss / 1e6
            engine = create_db_engine(f"sqlite:///{data_dir / 'crowdsky.sqlite3'}")
            with make_session_factory(engine)() as session:
                create_user(
                    session,
                    utcnow(),
                    username="bench",
                    email="bench@example.org",
                    password="bench-password",
                )
                key = create_api_key(session, utcnow(), username="bench", name="bench").key
            engine.dispose()
            template = make_template(tmp)
            mb = len(template) / 1e6
            serial = 0
            results: dict[int, list[float]] = {1: [], 8: []}
            cpu_per_gb: dict[int, list[float]] = {1: [], 8: []}
            for _ in range(args.runs):
                for clients in (1, 8):
                    rate, cpu = upload_run(
                        server.url,
                        key,
                        tmp / "template.fit",
                        args.frames,
                        clients,
                        serial,
                        server.process.pid,
                    )
                    results[clients].append(rate)
                    cpu_per_gb[clients].append(cpu)
                    serial += args.frames
            big = tmp / "big.fit"
            big_size = write_big_fits(big, args.big_mb)
            before_mb, peak_mb, big_rate = big_upload(server.url, key, big, server.process.pid)
        finally:
            server.stop()
    print(f"frame size {mb:.2f} MB, {args.frames} frames per run, {args.runs} runs")
    for clients, rates in results.items():
        runs = ", ".join(f"{r:.0f}" for r in rates)
        print(
            f"{clients} client(s): median {statistics.median(rates):.0f} MB/s ({runs}); "
            f"server CPU {statistics.median(cpu_per_gb[clients]):.2f} s per GB received"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(
        f"single {big_size / 1e6:.0f} MB upload: {big_rate:.0f} MB/s; server RSS "
        f"{idle_mb:.0f} MB idle after start, {before_mb:.0f} MB before this upload, "
        f"peak {peak_mb:.0f} MB during it (growth {peak_mb - before_mb:.1f} MB)"
    )


if __name__ == "__main__":
    main()
