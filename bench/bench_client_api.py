"""Data API and my_stacks over 1,000,000 stacks on PostgreSQL (in-process, no HTTP).

Creates a scratch database, migrates it, fills it with ``generate_series`` (one user
owns 100,000 stacks; the rest are spread over 200 users and the whole sky), then times
the catalogue functions the endpoints call: ``frames_by_healpix`` (p50/p99 over random
occupied tiles), ``iter_user_stacks`` of the 100,000-stack user (time to the last row)
and ``sky_coverage``. The database is dropped at the end.

    .venv/bin/python bench/bench_client_api.py [--stacks 1000000] [--queries 300]
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import time

from sqlalchemy import create_engine, text

from crowdsky import stacks
from crowdsky.db import create_db_engine, make_session_factory, upgrade_database

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
        with factory() as session:
            coverage = stacks.sky_coverage(session)
        print(f"sky_coverage: {len(coverage)} rows in {time.perf_counter() - t:.2f} s")
        engine.dispose()
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


if __name__ == "__main__":
    main()
