"""Login flood: 40 concurrent clients sending wrong Basic passwords to a real server.

Starts ``crowdsky server`` (SQLite in a temp dir) on 127.0.0.1 with one user, then runs
``--clients`` threads, each on its own connection, sending ``GET /api/my_jobs`` with a
wrong password (half for the real user, half for unknown names) as fast as the server
answers, for ``--seconds``. Meanwhile one probe calls ``/healthz`` every 50 ms and a
sampler reads the server's RSS every 50 ms. Printed: the server's RSS at rest and at
its peak, ``/healthz`` latency (median, p99, max), and the answers the attackers got;
as the anchor, ``/healthz`` latency measured the same way for a few seconds before the
attack (``calm_*``).

``--no-throttle`` raises the per-account and per-address limits out of reach, so every
attempt is hashed: what the hashing bound alone holds (memory, health latency).
``--store memory`` counts attempts in the process instead of the database (the
server's default since issue 18); ``throttle_rows`` is how many counters the database
holds after the attack.

Run: ``.venv/bin/python bench/bench_login_flood.py [--clients 40] [--seconds 20]
[--no-throttle] [--store database|memory] [--json]``
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.live_server import start_live_server  # noqa: E402

from crowdsky.accounts import create_user  # noqa: E402
from crowdsky.db import create_db_engine, make_session_factory  # noqa: E402
from crowdsky.db.types import utcnow  # noqa: E402

USERNAME = "flood-target"
PASSWORD = "the-right-password"
PROBE_INTERVAL_S = 0.05


def _basic(login: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{login}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def flood(
    clients: int, seconds: float, *, throttle: bool, store: str = "database"
) -> dict[str, object]:
    """Run one flood against a fresh server; the figures as a dict."""
    with tempfile.TemporaryDirectory(prefix="crowdsky-flood-") as tmp:
        env = {"CROWDSKY_CLEANUP_INTERVAL_SECONDS": "0", "CROWDSKY_LOGIN_THROTTLE": store}
        if not throttle:
            env["CROWDSKY_LOGIN_FAILURES_PER_ACCOUNT"] = "1000000000"
            env["CROWDSKY_LOGIN_FAILURES_PER_ADDRESS"] = "1000000000"
        server = start_live_server(Path(tmp) / "data", extra_env=env)
        try:
            engine = create_db_engine(f"sqlite:///{(Path(tmp) / 'data' / 'crowdsky.sqlite3')}")
            with make_session_factory(engine)() as session:
                create_user(
                    session, utcnow(), username=USERNAME, email="f@example.org", password=PASSWORD
                )
            process = psutil.Process(server.process.pid)
            with httpx.Client(base_url=server.url, timeout=30) as warm:
                # one real login and some health calls, so the baseline is a warm server
                assert warm.get("/api/my_jobs", headers=_basic(USERNAME, PASSWORD)).is_success
                for _ in range(20):
                    warm.get("/healthz")
            time.sleep(0.5)
            rss_rest = process.memory_info().rss
            calm = _attack(server.url, process, 0, min(seconds, 5.0))
            attacked = _attack(server.url, process, clients, seconds)
            with engine.connect() as connection:
                rows = connection.execute(text("SELECT count(*) FROM login_failures")).scalar()
            engine.dispose()
            return attacked | {
                "throttle_store": store,
                "throttle_rows": rows,
                "calm_healthz_median_ms": calm["healthz_median_ms"],
                "calm_healthz_p99_ms": calm["healthz_p99_ms"],
                "clients": clients,
                "seconds": seconds,
                "throttle": throttle,
                "rss_rest_mb": round(rss_rest / 2**20, 1),
            }
        finally:
            server.stop()


def _attack(url: str, process: psutil.Process, clients: int, seconds: float) -> dict[str, object]:
    stop = threading.Event()
    answers: Counter[int] = Counter()
    answers_lock = threading.Lock()
    latencies: list[float] = []
    rss_peak = [0]

    def attacker(index: int) -> None:
        login = USERNAME if index % 2 == 0 else f"nobody-{index}"
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                headers = _basic(login, secrets.token_hex(8))
                try:
                    status = client.get("/api/my_jobs", headers=headers).status_code
                except httpx.HTTPError:
                    status = 0
                with answers_lock:
                    answers[status] += 1

    def probe() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                started = time.perf_counter()
                client.get("/healthz").raise_for_status()
                latencies.append(time.perf_counter() - started)
                time.sleep(PROBE_INTERVAL_S)

    def sampler() -> None:
        while not stop.is_set():
            rss_peak[0] = max(rss_peak[0], process.memory_info().rss)
            time.sleep(PROBE_INTERVAL_S)

    threads = [threading.Thread(target=attacker, args=(i,)) for i in range(clients)]
    threads += [threading.Thread(target=probe), threading.Thread(target=sampler)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "rss_peak_mb": round(rss_peak[0] / 2**20, 1),
        "healthz_probes": len(ordered),
        "healthz_median_ms": round(statistics.median(ordered) * 1000, 1),
        "healthz_p99_ms": round(p99 * 1000, 1),
        "healthz_max_ms": round(ordered[-1] * 1000, 1),
        "answers": {str(status): count for status, count in sorted(answers.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-throttle", action="store_true")
    parser.add_argument("--store", choices=("database", "memory"), default="database")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    figures = flood(args.clients, args.seconds, throttle=not args.no_throttle, store=args.store)
    rest = figures["rss_rest_mb"]
    figures["rss_growth_mb"] = round(float(figures["rss_peak_mb"]) - float(rest), 1)  # type: ignore[arg-type]
    if args.json:
        sys.stdout.write(json.dumps(figures) + "\n")
        return
    for key, value in figures.items():
        sys.stdout.write(f"{key:>20}: {value}\n")


if __name__ == "__main__":
    main()
