"""Claim throughput and latency of the worker API against a real server process.

For each backend (SQLite, PostgreSQL, MariaDB) and each client concurrency (1, 16, 64),
a fresh database is seeded with jobs, ``crowdsky server`` is started on loopback, and
clients call ``GET /api/next_job.php`` as fast as they can for a fixed time. Clients run
in several processes (threads with persistent HTTP/1.1 connections in each), because a
single Python process would measure its own GIL rather than the server.

Usage (from the project root)::

    .venv/bin/python bench/bench_queue.py [--seconds 8] [--repeats 3]
        [--backends sqlite,postgresql,mariadb] [--clients 1,16,64] [--server-workers 1,2]

Prints a markdown table (median over repeats). The machine has 2 cores shared by the
clients, the server and the database, so figures are a floor, not a capacity.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.db_backends import create_server_database, drop_server_database  # noqa: E402
from tests.support.live_server import start_live_server  # noqa: E402

from crowdsky.db import create_db_engine, make_session_factory, upgrade_database  # noqa: E402
from crowdsky.storage.raw_store import RawStore  # noqa: E402
from crowdsky.testing import seed_jobs  # noqa: E402

CLIENT_PROCESSES_MAX = 4
SEED_CLAIMS_PER_SECOND = 3000
"""Jobs seeded per second of measurement; a run that drains them fails loudly."""


def _client_process(
    port: int, key: str, threads: int, start_at: float, stop_at: float, out: mp.Queue
) -> None:
    latencies: list[float] = []
    lock = threading.Lock()

    def loop(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {key}"}
        mine: list[float] = []
        while time.time() < start_at:
            time.sleep(0.001)
        path = f"/api/next_job.php?worker_id=bench-{os.getpid()}-{index}"
        while time.time() < stop_at:
            t0 = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - t0
            if response.status == 200:
                mine.append(elapsed)
            elif response.status == 204:
                out.put(None)  # queue drained before the end: the rate would be capped
                break
            else:
                raise RuntimeError(f"unexpected {response.status}")
        conn.close()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put(latencies)


def run_load(port: int, key: str, clients: int, seconds: float) -> tuple[float, float, float]:
    """Claims per second, p50 and p99 latency (ms) for ``clients`` concurrent clients."""
    processes = min(clients, CLIENT_PROCESSES_MAX)
    per_process = [clients // processes + (i < clients % processes) for i in range(processes)]
    start_at = time.time() + 1.0
    stop_at = start_at + seconds
    out: mp.Queue = mp.Queue()
    procs = [
        mp.Process(target=_client_process, args=(port, key, n, start_at, stop_at, out))
        for n in per_process
    ]
    for proc in procs:
        proc.start()
    latencies: list[float] = []
    drained = False
    finished = 0
    while finished < len(procs):
        item = out.get()
        if item is None:
            drained = True
            continue
        latencies.extend(item)
        finished += 1
    for proc in procs:
        proc.join()
    latencies.sort()
    if not latencies:
        raise RuntimeError("no claims")
    if drained:
        raise RuntimeError(
            f"the queue ran dry after {len(latencies)} claims: seed more jobs "
            f"(SEED_CLAIMS_PER_SECOND) or the rate is only a lower bound"
        )
    rate = len(latencies) / seconds
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    return rate, p50, p99


def bench_backend(
    backend: str, clients_list: list[int], seconds: float, repeats: int, server_workers: int
) -> list[tuple[str, int, float, float, float]]:
    rows = []
    for clients in clients_list:
        samples = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory(prefix="crowdsky-bench-") as tmp:
                data = Path(tmp)
                admin = None
                if backend == "sqlite":
                    url = f"sqlite:///{data / 'crowdsky.sqlite3'}"
                else:
                    url, admin = create_server_database(backend)
                try:
                    upgrade_database(url)
                    engine = create_db_engine(url)
                    # enough work for the whole run (a drained queue is an error)
                    seed_jobs(
                        make_session_factory(engine),
                        RawStore(data / "uploads"),
                        n_jobs=int(SEED_CLAIMS_PER_SECOND * seconds) + 500,
                        files_per_job=1,
                    )
                    engine.dispose()
                    server = start_live_server(
                        data,
                        database_url=None if backend == "sqlite" else url,
                        workers=server_workers,
                        extra_env={"CROWDSKY_CLEANUP_INTERVAL_SECONDS": "0"},
                    )
                    try:
                        port = int(server.url.rsplit(":", 1)[1])
                        samples.append(run_load(port, server.worker_key, clients, seconds))
                    finally:
                        server.stop()
                finally:
                    if admin is not None:
                        drop_server_database(url, admin)
        rate = statistics.median(s[0] for s in samples)
        p50 = statistics.median(s[1] for s in samples)
        p99 = statistics.median(s[2] for s in samples)
        print(
            f"{backend:10s} clients={clients:3d} {rate:8.0f} claims/s  p50 {p50:6.1f} ms  "
            f"p99 {p99:6.1f} ms",
            flush=True,
        )
        rows.append((backend, clients, rate, p50, p99))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql,mariadb")
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument(
        "--server-workers", default="1,2", help="server processes to try (SQLite: always 1)"
    )
    args = parser.parse_args()
    rows = []
    for backend in args.backends.split(","):
        counts = [1] if backend == "sqlite" else [int(w) for w in args.server_workers.split(",")]
        for workers in counts:
            for row in bench_backend(
                backend,
                [int(c) for c in args.clients.split(",")],
                args.seconds,
                args.repeats,
                workers,
            ):
                rows.append((*row, workers))
    print()
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print("| backend | server processes | clients | claims/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for backend, clients, rate, p50, p99, workers in rows:
        print(f"| {backend} | {workers} | {clients} | {rate:.0f} | {p50:.1f} | {p99:.1f} |")


if __name__ == "__main__":
    main()
