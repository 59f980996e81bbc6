"""Data API and my_stacks over 1,000,000 stacks on PostgreSQL, in-process and over HTTP.

Creates a scratch database, migrates it, fills it with ``generate_series`` (one user
owns 100,000 stacks; the rest are spread over 200 users and the whole sky) and
rebuilds the coverage cells (the fill bypasses the session events that keep them).
Then times, in-process, the catalogue functions the endpoints call:
``frames_by_healpix`` (p50/p99 over random occupied tiles), ``iter_user_stacks`` of
the 100,000-stack user, ``sky_coverage`` from the kept cells and, as the anchor of
the same run, the aggregate over ``stacked_frames`` it used to run. Then starts a real
``crowdsky server`` process on the database and times over HTTP: ``my_stacks`` of
the 100,000-stack user (time to the first and the last byte, the server's RSS before
and after and its peak), ``sky_coverage`` and ``frames_by_healpix`` p50/p99. The
database is dropped at the end.

    .venv/bin/python bench/bench_client_api.py [--stacks 1000000] [--queries 300]
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, distinct, func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.live_server import start_live_server  # noqa: E402

from crowdsky import stacks  # noqa: E402
from crowdsky.accounts import create_api_key  # noqa: E402
from crowdsky.db import create_db_engine, make_session_factory, upgrade_database  # noqa: E402
from crowdsky.db.models import StackedFrame  # noqa: E402
from crowdsky.db.types import utcnow  # noqa: E402

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FILL = """
INSERT INTO users (id, username, email, password_hash, is_active, stacks_private,
                   created_at, updated_at)
SELECT g, 'u' || g, 'u' || g || '@example.invalid', '!', true, false, now(), now()
FROM generate_series(1, 201) g;
INSERT INTO upload_sessions (id, user_id, session_token, file_count, total_size_bytes,
                             status, storage_path, created_at, last_activity_at)
VALUES (1, 1, 'bench', 0, 0, 'complete', 'x', now(), now());
INSERT INTO stacking_jobs (id, user_id, upload_session_id, chunk_key, kind, frame_count,
                           status, attempts, retry_count, created_at)
SELECT g, CASE WHEN g <= :owned THEN 1 ELSE 2 + g % 200 END, 1, 'k' || g, 'stack', 10,
       'completed', 1, 0, now()
FROM generate_series(1, :n) g;
INSERT INTO stacked_frames (id, stacking_job_id, user_id, object_name, chunk_key,
    filter_name, ucloud_path, n_frames_input, n_frames_aligned, total_exptime,
    date_obs_start, date_obs_end, ra_deg, dec_deg, file_size_bytes, eq_mode, healpix,
    is_private, location_scrubbed, created_at)
SELECT g, g, CASE WHEN g <= :owned THEN 1 ELSE 2 + g % 200 END, 'M ' || (g % 110),
       '20260101.' || lpad((g % 96)::text, 2, '0')
           || '_HP' || lpad(((g::bigint * 7919) % 196608)::text, 6, '0'),
       CASE WHEN g % 3 = 0 THEN 'IRCUT' ELSE 'LP' END,
       '/crowdsky/stacks/user_1/M/stack_' || g || '.fits', 10, 9, 100.0 + g % 300,
       timestamp '2025-01-01' + (g || ' minutes')::interval,
       timestamp '2025-01-01' + (g || ' minutes')::interval + interval '15 minutes',
       (g * 0.37) % 360, ((g * 0.11) % 180) - 90, 12000000, g % 2, (g::bigint * 7919) % 196608,
       g % 10 = 0, false, now()
FROM generate_series(1, :n) g;
ANALYZE;
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stacks", type=int, default=1_000_000)
    parser.add_argument("--owned", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    name = f"crowdsky_bench_{secrets.token_hex(4)}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        engine = create_db_engine(url)
        upgrade_database(url, engine=engine)
        t0 = time.perf_counter()
        with engine.begin() as c:
            for statement in FILL.split(";\n"):
                if statement.strip():
                    c.execute(text(statement), {"n": args.stacks, "owned": args.owned})
        print(f"filled {args.stacks} stacks in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        with engine.begin() as c:
            cells = stacks.rebuild_coverage(c)
        print(f"rebuilt {cells} coverage cells in {time.perf_counter() - t0:.1f} s")
        factory = make_session_factory(engine)
        rng = random.Random(1)
        tiles = [(g * 7919) % 196608 for g in rng.sample(range(1, args.stacks), args.queries)]
        times = []
        with factory() as session:
            for tile in tiles:
                t = time.perf_counter()
                stacks.frames_by_healpix(session, stacks.TileQuery(healpix=tile))
                times.append((time.perf_counter() - t) * 1000)
        times.sort()
        p50 = statistics.median(times)
        p99 = times[int(0.99 * (len(times) - 1))]
        print(f"frames_by_healpix: p50 {p50:.2f} ms, p99 {p99:.2f} ms over {len(times)} tiles")
        t = time.perf_counter()
        rows = sum(len(b) for b in stacks.iter_user_stacks(factory, user_id=1))
        print(f"iter_user_stacks: {rows} stacks in {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        lines = sum(b.count("\n") for b in stacks.iter_coverage_lines(factory))
        print(
            f"sky_coverage lines, first read after the rebuild (writes the cells' lines): "
            f"{lines} in {time.perf_counter() - t:.2f} s"
        )
        kept_times = []
        for _ in range(5):
            t = time.perf_counter()
            lines = sum(b.count("\n") for b in stacks.iter_coverage_lines(factory))
            kept_times.append(time.perf_counter() - t)
        kept = statistics.median(kept_times)
        t = time.perf_counter()
        with factory() as session:
            anchor_rows = len(session.execute(_old_coverage_query()).all())
        anchor = time.perf_counter() - t
        print(
            f"sky_coverage from the kept cells: {lines} lines, median {kept:.3f} s "
            f"(min {min(kept_times):.3f}, max {max(kept_times):.3f}) over 5 reads; "
            f"anchor (aggregate over stacked_frames, as before): {anchor_rows} rows in "
            f"{anchor:.2f} s; ratio {anchor / kept:.1f}x"
        )
        with factory() as session:
            key = create_api_key(session, utcnow(), username="u1", name="bench").key
        engine.dispose()
        _over_http(url, key, tiles)
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _old_coverage_query() -> object:
    """The aggregate ``sky_coverage`` ran before the kept cells (the anchor)."""
    name = func.coalesce(StackedFrame.filter_name, "")
    return (
        select(
            StackedFrame.healpix,
            name,
            func.count(),
            func.coalesce(func.sum(StackedFrame.total_exptime), 0.0),
            func.count(distinct(StackedFrame.user_id)),
            func.min(StackedFrame.date_obs_start),
            func.max(StackedFrame.date_obs_start),
        )
        .where(StackedFrame.is_private.is_(False), StackedFrame.healpix.is_not(None))
        .group_by(StackedFrame.healpix, name)
        .order_by(StackedFrame.healpix, name)
    )


def _rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def _over_http(database_url: str, key: str, tiles: list[int]) -> None:
    """The same reads through a real server process on loopback."""
    with tempfile.TemporaryDirectory(prefix="crowdsky-bench-") as scratch:
        live = start_live_server(
            Path(scratch) / "data",
            database_url=database_url,
            extra_env={"CROWDSKY_CLEANUP_INTERVAL_SECONDS": "0"},
        )
        try:
            pid = live.process.pid
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=live.url, timeout=600.0) as client:
                client.get("/api/my_stacks.php", headers=headers, params={"limit": 1})
                before = _rss_kib(pid)
                t = time.perf_counter()
                first = None
                size = 0
                with client.stream("GET", "/api/my_stacks.php", headers=headers) as reply:
                    reply.raise_for_status()
                    body = bytearray()
                    for chunk in reply.iter_raw():
                        if first is None:
                            first = time.perf_counter() - t
                        size += len(chunk)
                        body += chunk
                last = time.perf_counter() - t
                after = _rss_kib(pid)
                count = len(json.loads(bytes(body)))
                print(
                    f"my_stacks over HTTP: {count} stacks, {size / 1e6:.1f} MB, first byte "
                    f"{(first or 0) * 1000:.0f} ms, last byte {last:.2f} s; server RSS "
                    f"{before['VmRSS'] / 1024:.0f} MiB before, {after['VmRSS'] / 1024:.0f} "
                    f"MiB after, peak {after['VmHWM'] / 1024:.0f} MiB"
                )
                times = []
                for _ in range(5):
                    t = time.perf_counter()
                    text_reply = client.get("/api/sky_coverage.php")
                    text_reply.raise_for_status()
                    times.append(time.perf_counter() - t)
                lines = text_reply.text.count("\n")
                print(
                    f"sky_coverage over HTTP: {lines} lines, median {statistics.median(times):.3f}"
                    f" s (min {min(times):.3f}, max {max(times):.3f}) over {len(times)} calls"
                )
                times = []
                for tile in tiles:
                    t = time.perf_counter()
                    client.get(
                        "/api/frames_by_healpix.php", headers=headers, params={"healpix": tile}
                    ).raise_for_status()
                    times.append((time.perf_counter() - t) * 1000)
                times.sort()
                print(
                    f"frames_by_healpix over HTTP: p50 {statistics.median(times):.2f} ms, "
                    f"p99 {times[int(0.99 * (len(times) - 1))]:.2f} ms over {len(times)} tiles"
                )
        finally:
            live.stop()


if __name__ == "__main__":
    main()
