"""Scale benchmark: 4 API servers on one PostgreSQL, a deep queue, many workers, many uploaders.

Not run in CI (minutes of load on every core). Everything listens on 127.0.0.1.

1. **Claims.** Two PostgreSQL databases are filled by COPY: one with ``--jobs``
   (default 1,000,000) queued jobs, one with ``--anchor-jobs`` (1,000). Four
   ``crowdsky server`` processes serve each. ``--workers`` (default 1,000) simulated
   workers, asyncio + httpx in ``--client-processes`` processes, spread round-robin
   over the four servers, each loop: claim (``next_job``), heartbeat, release
   (``release_job``, so the queue keeps its depth), think ``--think`` seconds (with
   jitter). The anchor and the deep queue alternate ``--repeats`` times in one run;
   medians of claim p50/p99, heartbeat p50/p99 and claims/s are printed with the
   deep/anchor ratio, and the servers' CPU per claim cycle.
2. **EXPLAIN** of the claim query on the deep queue, before and after the load.
3. **Uploads.** A SeaweedFS cluster (master, two volume servers with replication 001,
   filer, S3 gateway; ``tests/support/seaweedfs.py``) behind four servers;
   ``--uploaders`` (default 32) threads upload ~4 MB Seestar frames concurrently,
   round-robin over the servers: MB/s, peak RSS of each server process and the
   servers' and store's CPU per GB.

Run (from the project root)::

    .venv/bin/python bench/bench_scale.py [--jobs 1000000] [--workers 1000]
        [--seconds 20] [--repeats 2] [--uploaders 32] [--frames-per-uploader 4]
        [--skip-claims] [--skip-uploads]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing as mp
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_upload import frame_bytes, make_template  # noqa: E402
from tests.db_backends import create_server_database, drop_server_database  # noqa: E402
from tests.support.live_server import LiveServer, start_live_server  # noqa: E402
from tests.support.seaweedfs import SeaweedCluster, start_seaweedfs  # noqa: E402

from crowdsky.accounts import create_api_key, create_user  # noqa: E402
from crowdsky.db import create_db_engine, make_session_factory, upgrade_database  # noqa: E402
from crowdsky.db.types import utcnow  # noqa: E402
from crowdsky.queue.transitions import _PENDING_CANDIDATE  # noqa: E402
from crowdsky.storage.raw_store import RawStore  # noqa: E402
from crowdsky.testing import seed_jobs  # noqa: E402

SERVERS = 4
WORKER_KEY = "scale-bench-worker-key-" + "s" * 24
COPY_BATCH = 100_000
SAMPLE_KEYS = ("claim", "heartbeat", "empty", "errors", "transport")
#: Seconds of load before measuring: connections open, the first claims spread out.
WARMUP_S = 5.0
UPLOAD_URL = "/api/raw_upload.php"


# -- the queue ------------------------------------------------------------------------------


def fill_queue(url: str, n_jobs: int, data_dir: Path) -> None:
    """``n_jobs`` pending jobs in one upload session: one through the ORM, the rest by COPY."""
    upgrade_database(url)
    engine = create_db_engine(url)
    try:
        seed_jobs(
            make_session_factory(engine), RawStore(data_dir / "seed"), n_jobs=1, files_per_job=1
        )
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT user_id, upload_session_id, created_at FROM stacking_jobs")
            user_id, session_id, first = cursor.fetchone()
            columns = (
                "user_id, upload_session_id, chunk_key, kind, frame_count, status, "
                "attempts, retry_count, created_at"
            )
            with cursor.copy(f"COPY stacking_jobs ({columns}) FROM STDIN") as copy:
                for start in range(1, n_jobs, COPY_BATCH):
                    buffer = io.StringIO()
                    for index in range(start, min(n_jobs, start + COPY_BATCH)):
                        moment = (first + timedelta(milliseconds=index)).isoformat()
                        buffer.write(
                            f"{user_id}\t{session_id}\tc{index}\tstack\t1\tpending\t0\t0\t{moment}\n"
                        )
                    copy.write(buffer.getvalue())
            raw.commit()
        finally:
            raw.close()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE stacking_jobs")
    finally:
        engine.dispose()


def explain_claim(url: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the pending-job claim query, rolled back."""
    engine = create_db_engine(url)
    try:
        compiled = _PENDING_CANDIDATE.compile(
            dialect=engine.dialect, compile_kwargs={"literal_binds": True}
        )
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}").all()
            connection.rollback()
        return "\n".join(str(r[0]) for r in rows)
    finally:
        engine.dispose()


@contextmanager
def servers_on(
    url: str, root: Path, extra: dict[str, str] | None = None
) -> Iterator[list[LiveServer]]:
    """Four server processes on one database (cleanup off: nothing moves behind the load)."""
    env = {"CROWDSKY_CLEANUP_INTERVAL_SECONDS": "0", **(extra or {})}
    started: list[LiveServer] = []
    try:
        for index in range(SERVERS):
            started.append(
                start_live_server(
                    root / f"server-{index}", database_url=url, worker_key=WORKER_KEY, extra_env=env
                )
            )
        yield started
    finally:
        for server in started:
            server.stop()


# -- simulated workers ----------------------------------------------------------------------


async def _worker_loop(
    client: httpx.AsyncClient,
    name: str,
    think: float,
    window: tuple[float, float],
    out: dict[str, list[float]],
) -> None:
    """One simulated worker: claim, heartbeat, release, think; samples taken inside ``window``."""
    headers = {"Authorization": f"Bearer {WORKER_KEY}"}
    measure_from, stop_at = window
    await asyncio.sleep(random.uniform(0, think))  # spread the first claims
    while time.time() < stop_at:
        measured = time.time() >= measure_from
        try:
            await _cycle(client, name, headers, out if measured else None)
        except httpx.TransportError:
            # a keep-alive connection closed under us: a real worker retries, so do we
            if measured:
                out["transport"].append(0.0)
        pause = random.uniform(0.5 * think, 1.5 * think)
        await asyncio.sleep(min(pause, max(0.0, stop_at - time.time())))


async def _cycle(
    client: httpx.AsyncClient,
    name: str,
    headers: dict[str, str],
    out: dict[str, list[float]] | None,
) -> None:
    """Claim, heartbeat and release one job; latencies into ``out`` (None: not measured)."""
    t0 = time.perf_counter()
    reply = await client.get("/api/next_job.php", params={"worker_id": name}, headers=headers)
    claim_s = time.perf_counter() - t0
    if reply.status_code != 200:
        if out is not None:
            out["empty" if reply.status_code == 204 else "errors"].append(claim_s)
        return
    job = reply.json()
    identity = {"job_id": job["job_id"], "worker_id": name, "lease_token": job["lease_token"]}
    t0 = time.perf_counter()
    beat = await client.post(
        "/api/heartbeat.php", json={**identity, "progress": 0.5}, headers=headers
    )
    beat_s = time.perf_counter() - t0
    back = await client.post("/api/release_job.php", json=identity, headers=headers)
    if out is not None:
        out["claim"].append(claim_s)
        out["heartbeat"].append(beat_s)
        if beat.status_code != 200 or back.status_code != 200:
            out["errors"].append(float(beat.status_code * 1000 + back.status_code))


async def _client_main(
    urls: list[str], first: int, count: int, think: float, window: tuple[float, float]
) -> dict[str, list[float]]:
    """``count`` simulated workers in this process, named from ``first`` on."""
    out: dict[str, list[float]] = {key: [] for key in SAMPLE_KEYS}
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    clients = [httpx.AsyncClient(base_url=u, timeout=120, limits=limits) for u in urls]
    try:
        await asyncio.gather(
            *(
                _worker_loop(clients[i % len(clients)], f"sim-{i}", think, window, out)
                for i in range(first, first + count)
            )
        )
    finally:
        for client in clients:
            await client.aclose()
    return out


def _client_process(
    args: tuple[list[str], int, int, float, tuple[float, float]], queue: mp.Queue
) -> None:
    queue.put(asyncio.run(_client_main(*args)))


@dataclass
class ClaimFigures:
    claims_per_s: float
    claim_p50_ms: float
    claim_p99_ms: float
    heartbeat_p50_ms: float
    heartbeat_p99_ms: float
    empty: int
    errors: int
    transport_errors: int
    server_cpu_ms_per_cycle: float


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else float("nan")


def _cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def run_claims(
    servers: list[LiveServer], workers: int, processes: int, think: float, seconds: float
) -> ClaimFigures:
    """One load of ``workers`` simulated workers, measured for ``seconds`` after a warm-up."""
    urls = [s.url for s in servers]
    measure_from = time.time() + WARMUP_S
    window = (measure_from, measure_from + seconds)
    per = [workers // processes + (i < workers % processes) for i in range(processes)]
    queue: mp.Queue = mp.Queue()
    procs, first = [], 0
    for count in per:
        args = (urls, first, count, think, window)
        procs.append(mp.Process(target=_client_process, args=(args, queue)))
        first += count
    for proc in procs:
        proc.start()
    pids = [s.process.pid for s in servers]
    time.sleep(max(0.0, measure_from - time.time()))
    cpu0 = _cpu_s(pids)
    time.sleep(max(0.0, window[1] - time.time()))
    cpu = _cpu_s(pids) - cpu0
    merged: dict[str, list[float]] = {key: [] for key in SAMPLE_KEYS}
    for _ in procs:
        for key, values in queue.get().items():
            merged[key].extend(values)
    for proc in procs:
        proc.join()
    cycles = len(merged["claim"])
    return ClaimFigures(
        claims_per_s=cycles / seconds,
        claim_p50_ms=_quantile(merged["claim"], 0.50),
        claim_p99_ms=_quantile(merged["claim"], 0.99),
        heartbeat_p50_ms=_quantile(merged["heartbeat"], 0.50),
        heartbeat_p99_ms=_quantile(merged["heartbeat"], 0.99),
        empty=len(merged["empty"]),
        errors=len(merged["errors"]),
        transport_errors=len(merged["transport"]),
        server_cpu_ms_per_cycle=cpu * 1000 / max(1, cycles),
    )


def bench_claims(args: argparse.Namespace, root: Path) -> None:
    print(f"filling the queues: {args.anchor_jobs:,} and {args.jobs:,} jobs (COPY)", flush=True)
    anchor_url, anchor_admin = create_server_database("postgresql")
    deep_url, deep_admin = create_server_database("postgresql")
    try:
        t0 = time.perf_counter()
        fill_queue(anchor_url, args.anchor_jobs, root / "anchor")
        fill_queue(deep_url, args.jobs, root / "deep")
        print(f"filled in {time.perf_counter() - t0:.1f} s", flush=True)
        print("EXPLAIN of the claim query on the deep queue, before the load:")
        print(explain_claim(deep_url), flush=True)
        extra = {"CROWDSKY_JOB_LEASE_SECONDS": "600"}
        with (
            servers_on(anchor_url, root / "a", extra) as anchor,
            servers_on(deep_url, root / "d", extra) as deep,
        ):
            results: dict[str, list[ClaimFigures]] = {"anchor": [], "deep": []}
            for repeat in range(args.repeats):
                for label, servers in (("anchor", anchor), ("deep", deep)):
                    figures = run_claims(
                        servers, args.workers, args.client_processes, args.think, args.seconds
                    )
                    results[label].append(figures)
                    print(f"repeat {repeat + 1} {label:6s} {figures}", flush=True)
        print("EXPLAIN of the claim query on the deep queue, after the load:")
        print(explain_claim(deep_url), flush=True)
    finally:
        drop_server_database(anchor_url, anchor_admin)
        drop_server_database(deep_url, deep_admin)
    print()
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    medians = {
        label: {
            f: statistics.median(getattr(r, f) for r in rows)
            for f in ClaimFigures.__dataclass_fields__
        }
        for label, rows in results.items()
    }
    _table(
        [
            "queued jobs",
            "workers",
            "claims/s",
            "claim p50 ms",
            "claim p99 ms",
            "heartbeat p50 ms",
            "heartbeat p99 ms",
            "server CPU ms per cycle",
            "204s",
            "errors",
            "transport errors",
        ],
        [
            [f"{depth:,}", f"{args.workers:,}", f"{m['claims_per_s']:.0f}"]
            + [f"{m[k]:.1f}" for k in ("claim_p50_ms", "claim_p99_ms")]
            + [f"{m[k]:.1f}" for k in ("heartbeat_p50_ms", "heartbeat_p99_ms")]
            + [f"{m['server_cpu_ms_per_cycle']:.2f}", f"{m['empty']:.0f}", f"{m['errors']:.0f}"]
            + [f"{m['transport_errors']:.0f}"]
            for depth, m in ((args.anchor_jobs, medians["anchor"]), (args.jobs, medians["deep"]))
        ],
    )
    a, d = medians["anchor"], medians["deep"]
    if not a["claims_per_s"] or not d["claims_per_s"]:
        print("no claims measured: lower --workers or raise --think")
        return
    ratios = {k: d[k] / a[k] for k in ("claims_per_s", "claim_p50_ms", "claim_p99_ms")}
    print("deep/anchor: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))


def _table(header: list[str], rows: list[list[str]]) -> None:
    """Print a markdown table."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


# -- uploads --------------------------------------------------------------------------------


def _make_users(url: str, count: int) -> list[str]:
    engine = create_db_engine(url)
    keys = []
    try:
        with make_session_factory(engine)() as session:
            for index in range(count):
                name = f"uploader{index:02d}"
                create_user(
                    session,
                    utcnow(),
                    username=name,
                    email=f"{name}@example.org",
                    password="bench-password",
                )
                keys.append(create_api_key(session, utcnow(), username=name, name="bench").key)
    finally:
        engine.dispose()
    return keys


def _uploader(base: str, key: str, frames: list[bytes], errors: list[str]) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
        token = client.post(UPLOAD_URL, params={"action": "start"}).json()["session_token"]
        for index, body in enumerate(frames):
            reply = client.post(
                UPLOAD_URL,
                params={"action": "file"},
                data={"session_token": token},
                files={"file": (f"Light_{index:05d}.fit", body, "application/octet-stream")},
            )
            if reply.status_code != 200:
                errors.append(f"{reply.status_code}: {reply.text[:200]}")


def _sample_rss(pids: list[int], peaks: dict[int, int], stop: threading.Event) -> None:
    while not stop.is_set():
        for pid in pids:
            rss = psutil.Process(pid).memory_info().rss
            peaks[pid] = max(peaks.get(pid, 0), rss)
        stop.wait(0.2)


def bench_uploads(args: argparse.Namespace, root: Path) -> None:
    print(f"starting SeaweedFS and {SERVERS} servers for {args.uploaders} uploaders", flush=True)
    seaweed: SeaweedCluster = start_seaweedfs(root / "seaweedfs")
    url, admin = create_server_database("postgresql")
    try:
        bucket = seaweed.create_bucket()
        upgrade_database(url)
        keys = _make_users(url, args.uploaders)
        env = {**seaweed.s3_env(), "CROWDSKY_RAW_STORE": f"s3://{bucket}/raws"}
        template = make_template(root)
        batches = [
            [frame_bytes(template, u * 1000 + i) for i in range(args.frames_per_uploader)]
            for u in range(args.uploaders)
        ]
        with servers_on(url, root / "u", env) as servers:
            pids = [s.process.pid for s in servers]
            store_pids = [p.process.pid for p in seaweed.processes if p.process is not None]
            idle = {pid: psutil.Process(pid).memory_info().rss for pid in pids}
            peaks: dict[int, int] = {}
            errors: list[str] = []
            stop = threading.Event()
            sampler = threading.Thread(target=_sample_rss, args=(pids, peaks, stop))
            sampler.start()
            threads = [
                threading.Thread(
                    target=_uploader, args=(servers[i % SERVERS].url, keys[i], batch, errors)
                )
                for i, batch in enumerate(batches)
            ]
            cpu0, store0 = _cpu_s(pids), _cpu_s(store_pids)
            t0 = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - t0
            cpu, store_cpu = _cpu_s(pids) - cpu0, _cpu_s(store_pids) - store0
            stop.set()
            sampler.join()
        total = sum(len(b) for batch in batches for b in batch)
        gb = total / 1e9
        print()
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        print(f"errors: {len(errors)} {errors[:3]}")
        _table(
            [
                "uploaders",
                "frames",
                "MB",
                "seconds",
                "MB/s",
                "server CPU s/GB",
                "store CPU s/GB",
                "server RSS idle MB",
                "server RSS peak MB (each)",
            ],
            [
                [
                    str(args.uploaders),
                    str(args.uploaders * args.frames_per_uploader),
                    f"{total / 1000000.0:.0f}",
                    f"{elapsed:.1f}",
                    f"{total / 1000000.0 / elapsed:.1f}",
                    f"{cpu / gb:.1f}",
                    f"{store_cpu / gb:.1f}",
                    f"{statistics.median(idle.values()) / 1000000.0:.0f}",
                    ", ".join(f"{peaks[p] / 1000000.0:.0f}" for p in pids),
                ]
            ],
        )
    finally:
        drop_server_database(url, admin)
        seaweed.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000, help="queued jobs of the deep queue")
    parser.add_argument("--anchor-jobs", type=int, default=1_000, help="queued jobs of the anchor")
    parser.add_argument("--workers", type=int, default=1_000, help="simulated workers")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--think", type=float, default=30.0, help="mean seconds between cycles")
    parser.add_argument("--seconds", type=float, default=45.0, help="measured seconds per load")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--uploaders", type=int, default=32)
    parser.add_argument("--frames-per-uploader", type=int, default=4)
    parser.add_argument("--skip-claims", action="store_true")
    parser.add_argument("--skip-uploads", action="store_true")
    args = parser.parse_args()
    # SIGTERM (also what a background run gets instead of Ctrl-C) still stops the
    # servers and drops the databases
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="crowdsky-scale-") as tmp:
        if not args.skip_claims:
            bench_claims(args, Path(tmp))
        if not args.skip_uploads:
            bench_uploads(args, Path(tmp))


if __name__ == "__main__":
    main()
