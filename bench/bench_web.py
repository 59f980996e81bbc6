"""How fast the stacks page of a user with many stacks becomes interactive (real browser).

A ``crowdsky server`` process is started on loopback with a fresh SQLite database into
which N stacks (plus their sessions and jobs) are inserted for one user, spread over the
sky and a year. Debian's Chromium (Playwright) logs in once, then loads ``/stacks``
repeatedly; the time is from navigation start until the page has fetched the stacks and
drawn the map, timeline, gallery and table (``body[data-stacks-ready]``), and then a
click on the first table sort button has re-rendered (so the page answers input).

Usage (from the project root)::

    .venv/bin/python bench/bench_web.py [--stacks 10000] [--anchor 100] [--repeats 5]

Prints, for the anchor (few stacks) and for N stacks, the first load (the server computes
and keeps the stacks document) and the median and range of the following loads (the
browser revalidates it with its ETag), and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.live_server import start_live_server  # noqa: E402

from crowdsky.accounts import create_user  # noqa: E402
from crowdsky.db import create_db_engine, make_session_factory  # noqa: E402
from crowdsky.db.models import StackedFrame, StackingJob, UploadSession  # noqa: E402
from crowdsky.db.types import utcnow  # noqa: E402

PASSWORD = "Bench-Password-42"
FILTERS = ["IRCUT", "LP", None]


def seed(database_url: str, username: str, count: int, rng: random.Random) -> None:
    """A user with ``count`` stacks (one session, one job per stack)."""
    engine = create_db_engine(database_url)
    try:
        factory = make_session_factory(engine)
        with factory() as session:
            user = create_user(
                session,
                utcnow(),
                username=username,
                email=f"{username}@example.org",
                password=PASSWORD,
            )
        now = utcnow()
        start = datetime(2025, 1, 1, tzinfo=UTC)
        with engine.begin() as conn:
            session_id = conn.execute(
                insert(UploadSession).values(
                    user_id=user.id,
                    session_token=f"bench{username}"[:64],
                    file_count=0,
                    total_size_bytes=0,
                    status="complete",
                    storage_path=f"bench/{username}",
                    created_at=now,
                    last_activity_at=now,
                )
            ).inserted_primary_key[0]
            jobs, stacks = [], []
            for i in range(count):
                t = start + timedelta(minutes=rng.uniform(0, 365 * 24 * 60))
                jobs.append(
                    dict(
                        user_id=user.id,
                        upload_session_id=session_id,
                        chunk_key=f"k{i}",
                        object_name=f"Object {i % 400}",
                        frame_count=40,
                        status="completed",
                        created_at=now,
                    )
                )
            conn.execute(insert(StackingJob), jobs)
            ids = [
                row[0]
                for row in conn.exec_driver_sql(
                    "SELECT id FROM stacking_jobs WHERE upload_session_id = ? ORDER BY id",
                    (session_id,),
                )
            ]
            for i, job_id in enumerate(ids):
                t = start + timedelta(minutes=rng.uniform(0, 365 * 24 * 60))
                stacks.append(
                    dict(
                        stacking_job_id=job_id,
                        user_id=user.id,
                        object_name=f"Object {i % 400}",
                        chunk_key=f"k{i}",
                        telescope="Seestar S50",
                        filter_name=FILTERS[i % 3],
                        ucloud_path=f"/crowdsky/stacks/bench/{i}.fits",
                        thumbnail_path=None,
                        n_frames_input=40,
                        n_frames_aligned=38,
                        total_exptime=380.0,
                        date_obs_start=t,
                        date_obs_end=t + timedelta(minutes=7),
                        ra_deg=rng.uniform(0, 360),
                        dec_deg=math.degrees(math.asin(rng.uniform(-0.5, 1.0))),
                        file_size_bytes=29_000_000,
                        n_stars_detected=150,
                        created_at=now,
                    )
                )
            conn.execute(insert(StackedFrame), stacks)
    finally:
        engine.dispose()


def measure(page: object, base: str) -> float:
    """Seconds from navigation start until the stacks page answered a sort click."""
    started = time.perf_counter()
    page.goto(f"{base}/stacks")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-stacks-ready='1']", timeout=60_000)  # type: ignore[attr-defined]
    page.click("#stack-table th button[data-sort=object]")  # type: ignore[attr-defined]
    page.wait_for_selector("#stack-table th button[data-dir]", timeout=60_000)  # type: ignore[attr-defined]
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=10_000)
    parser.add_argument("--anchor", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium not found (apt-get install chromium)")
        return 1
    from playwright.sync_api import sync_playwright

    rng = random.Random(15)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "server"
        server = start_live_server(data_dir)
        try:
            url = f"sqlite:///{(data_dir / 'crowdsky.sqlite3').resolve()}"
            seed(url, "anchor-user", args.anchor, rng)
            seed(url, "many-user", args.stacks, rng)
            results: dict[str, list[float]] = {}
            cold: dict[str, float] = {}
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
                )
                for username in ("anchor-user", "many-user"):
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    page = context.new_page()
                    page.goto(f"{server.url}/login")
                    page.fill("#login", username)
                    page.fill("#password", PASSWORD)
                    page.click("form[action='/login'] button[type=submit]")
                    page.wait_for_url("**/stacks")
                    # the first load computes the document (the server then keeps it)
                    cold[username] = measure(page, server.url)
                    results[username] = [measure(page, server.url) for _ in range(args.repeats)]
                    context.close()
                browser.close()
        finally:
            server.stop()
    anchor = statistics.median(results["anchor-user"])
    many = statistics.median(results["many-user"])
    print("| stacks | first load s | median s | min s | max s |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for name, n in (("anchor-user", args.anchor), ("many-user", args.stacks)):
        r = results[name]
        print(
            f"| {n} | {cold[name]:.3f} | {statistics.median(r):.3f} | {min(r):.3f} | {max(r):.3f} |"
        )
    print(f"\nratio {args.stacks} / {args.anchor} stacks: {many / anchor:.2f}")
    print(f"target < 1.5 s for {args.stacks} stacks: {'met' if many < 1.5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
