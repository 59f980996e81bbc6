"""Raw store benchmark: local data dir against S3 on a real SeaweedFS cluster (loopback).

For each store it starts a real ``crowdsky server`` (SQLite, cleanup off) and measures

1. upload throughput (MB/s) of ~4 MB Seestar-sized FITS frames with 1 and with 4
   parallel clients (each its own connection and session), and the server process's
   CPU seconds per uploaded GB (psutil) — the per-request cost the sizing table in
   ``docs/deployment.md`` is computed from;
2. ``download_raw`` latency after a real claim: time to the server's answer (the
   file's first byte for the local store, the 307 for S3) and time to the whole file
   (following the redirect to the store), median and p90 over every file, plus the
   server's CPU per download.

The S3 run uses the SeaweedFS processes of ``tests/support/seaweedfs.py`` (master, two
volume servers with replication 001, filer, S3 gateway), all on this machine: the
bytes cross loopback twice (client → server → store) and are stored twice.

Run: ``.venv/bin/python bench/bench_objectstore.py [--frames 24] [--downloads 24]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_upload import frame_bytes, make_template  # noqa: E402
from tests.support.live_server import LiveServer, start_live_server  # noqa: E402
from tests.support.seaweedfs import start_seaweedfs  # noqa: E402

from crowdsky.accounts import create_api_key, create_user  # noqa: E402
from crowdsky.db import create_db_engine, make_session_factory  # noqa: E402
from crowdsky.db.types import utcnow  # noqa: E402

URL = "/api/raw_upload.php"


def _cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _api_key(data_dir: Path) -> str:
    engine = create_db_engine(f"sqlite:///{data_dir / 'crowdsky.sqlite3'}")
    with make_session_factory(engine)() as session:
        create_user(
            session, utcnow(), username="bench", email="bench@example.org", password="bench-pw"
        )
        key = create_api_key(session, utcnow(), username="bench", name="bench").key
    engine.dispose()
    return key


def _upload_session(base: str, key: str, frames: list[bytes], finalize: bool) -> list[int]:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        token = client.post(URL, params={"action": "start"}).json()["session_token"]
        for index, body in enumerate(frames):
            reply = client.post(
                URL,
                params={"action": "file"},
                data={"session_token": token},
                files={"file": (f"Light_{index:05d}.fit", body, "application/octet-stream")},
            )
            reply.raise_for_status()
        if not finalize:
            return []
        done = client.post(URL, params={"action": "finalize"}, data={"session_token": token})
        done.raise_for_status()
        return [int(j) for j in done.json()["job_ids"]]


def upload_run(
    server: LiveServer,
    key: str,
    template: bytes,
    n_frames: int,
    clients: int,
    serial: int,
    store_pids: list[int],
) -> tuple[float, float, float]:
    """MB/s over all clients, server and store CPU seconds per GB."""
    per_client = n_frames // clients
    batches = [
        [frame_bytes(template, serial + c * per_client + i) for i in range(per_client)]
        for c in range(clients)
    ]
    cpu0 = _cpu_s(server.process.pid)
    store0 = sum(_cpu_s(pid) for pid in store_pids)
    started = time.perf_counter()
    threads = [
        threading.Thread(target=_upload_session, args=(server.url, key, batch, False))
        for batch in batches
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = _cpu_s(server.process.pid) - cpu0
    store_cpu = sum(_cpu_s(pid) for pid in store_pids) - store0
    gb = per_client * clients * len(template) / 1e9
    return gb * 1e3 / elapsed, cpu / gb, store_cpu / gb


def download_run(
    server: LiveServer, key: str, template: bytes, n_files: int, serial: int
) -> dict[str, float]:
    """Claim a job of ``n_files`` frames and download each; latency figures in ms."""
    # one 15-minute chunk: every frame has the template's DATE-OBS
    _upload_session(
        server.url, key, [frame_bytes(template, serial + i) for i in range(n_files)], True
    )
    headers = server.worker_headers
    first: list[float] = []
    whole: list[float] = []
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as api:
        job = api.get("/api/next_job.php", params={"worker_id": "bench"}).json()
        files = api.get(
            "/api/job_files.php",
            params={
                "job_id": job["job_id"],
                "worker_id": "bench",
                "lease_token": job["lease_token"],
            },
        ).json()["files"]
        cpu0 = _cpu_s(server.process.pid)
        for entry in files:
            started = time.perf_counter()
            with api.stream(
                "GET", "/api/download_raw.php", params={"file_id": entry["id"]}
            ) as answer:
                first.append((time.perf_counter() - started) * 1e3)
                if answer.status_code == 307:
                    with httpx.stream("GET", answer.headers["location"], timeout=60) as store:
                        store.raise_for_status()
                        size = sum(len(c) for c in store.iter_bytes())
                else:
                    answer.raise_for_status()
                    size = sum(len(c) for c in answer.iter_bytes())
            whole.append((time.perf_counter() - started) * 1e3)
            assert size == len(template), (size, len(template))
        cpu = _cpu_s(server.process.pid) - cpu0
    return {
        "answer_p50_ms": statistics.median(first),
        "answer_p90_ms": statistics.quantiles(first, n=10)[-1],
        "file_p50_ms": statistics.median(whole),
        "file_p90_ms": statistics.quantiles(whole, n=10)[-1],
        "server_cpu_ms_per_download": cpu / len(files) * 1e3,
        "files": float(len(files)),
    }


def bench_store(
    name: str, tmp: Path, env: dict[str, str], args: argparse.Namespace, store_pids: list[int]
) -> dict[str, float]:
    data_dir = tmp / f"data-{name}"
    server = start_live_server(
        data_dir, extra_env={"CROWDSKY_CLEANUP_INTERVAL_SECONDS": "0", **env}
    )
    try:
        key = _api_key(data_dir)
        template = (
            make_template(tmp)
            if not (tmp / "template.fit").exists()
            else (tmp / "template.fit").read_bytes()
        )
        results: dict[str, float] = {"frame_mb": len(template) / 1e6}
        serial = 1_000_000 if name == "s3" else 0
        for clients in (1, 4):
            rates, cpus, store_cpus = [], [], []
            for _ in range(args.runs):
                rate, cpu, store_cpu = upload_run(
                    server, key, template, args.frames, clients, serial, store_pids
                )
                serial += args.frames
                rates.append(rate)
                cpus.append(cpu)
                store_cpus.append(store_cpu)
            results[f"upload_mb_s_{clients}"] = statistics.median(rates)
            results[f"server_cpu_s_per_gb_{clients}"] = statistics.median(cpus)
            results[f"store_cpu_s_per_gb_{clients}"] = statistics.median(store_cpus)
        results.update(download_run(server, key, template, args.downloads, serial))
        results["rss_mb"] = psutil.Process(server.process.pid).memory_info().rss / 1e6
        return results
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--downloads", type=int, default=24)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crowdsky-bench-objectstore-") as tmp_name:
        tmp = Path(tmp_name)
        local = bench_store("local", tmp, {}, args, [])
        cluster = start_seaweedfs(tmp / "seaweedfs")
        try:
            bucket = cluster.create_bucket("crowdsky-bench")
            env = {**cluster.s3_env(), "CROWDSKY_RAW_STORE": f"s3://{bucket}/raws"}
            pids = [p.process.pid for p in cluster.processes if p.process is not None]
            s3 = bench_store("s3", tmp, env, args, pids)
        finally:
            cluster.stop()
    print(f"{'figure':32} {'local':>10} {'s3':>10} {'s3/local':>9}")
    for figure in local:
        ratio = s3[figure] / local[figure] if local[figure] else float("nan")
        print(f"{figure:32} {local[figure]:10.2f} {s3[figure]:10.2f} {ratio:9.2f}")


if __name__ == "__main__":
    main()
