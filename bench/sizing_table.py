"""The sizing table of ``docs/deployment.md``, computed from measured per-request costs.

Every input is a figure measured by a benchmark of ``bench/`` (the defaults are the
ones the docs quote; pass new ones after a new measurement):

- ``--upload-cpu-s-per-gb``: API server CPU per uploaded GB into S3
  (``bench_scale.py``, 32 uploaders over 4 servers);
- ``--store-cpu-s-per-gb``: SeaweedFS CPU per uploaded GB (same run: gateway, filer,
  two replicas, the server-side copy from the staging key);
- ``--download-cpu-ms``: API server CPU per ``download_raw`` redirect
  (``bench_objectstore.py``);
- ``--cycle-cpu-ms``: API server CPU per claim + heartbeat + release
  (``bench_scale.py``, 1,000 simulated workers, 1,000,000 queued jobs);
- ``--stack-ms-per-frame``: one 2-core worker host's time per stacked frame
  (``bench_worker.py``).

The arithmetic: an owner makes ``--frames-per-owner`` frames of ``--frame-mb`` MB a night,
arriving over ``--window-hours``; a job is ``--frames-per-job`` frames and costs one
claim cycle plus one heartbeat per ``--frames-per-heartbeat`` frames. CPU per second
of the busiest hour is divided by the utilisation allowed (servers and store 50 %,
workers 70 %) and rounded up to whole 2-core hosts (store: cores).

Run: ``.venv/bin/python bench/sizing_table.py [--cycle-cpu-ms 6.0 ...]``
"""

from __future__ import annotations

import argparse
import math

OWNERS = (10, 100, 1_000, 10_000)
CORES_PER_HOST = 2


def row(owners: int, a: argparse.Namespace) -> list[str]:
    """One line of the table for ``owners`` active owners."""
    frames = owners * a.frames_per_owner
    frames_s = frames / (a.window_hours * 3600)
    ingest_mb_s = frames_s * a.frame_mb
    jobs_s = frames_s / a.frames_per_job
    beats_s = frames_s / a.frames_per_heartbeat
    api_cpu = (
        ingest_mb_s / 1000 * a.upload_cpu_s_per_gb
        + frames_s * a.download_cpu_ms / 1000
        + jobs_s * a.cycle_cpu_ms / 1000
        + beats_s * a.cycle_cpu_ms / 3 / 1000
    )
    api_cores = api_cpu / a.server_utilisation
    servers = max(1, math.ceil(api_cores / CORES_PER_HOST))
    store_cores = ingest_mb_s / 1000 * a.store_cpu_s_per_gb / a.server_utilisation
    worker_hosts = max(1, math.ceil(frames_s * a.stack_ms_per_frame / 1000 / a.worker_utilisation))
    raw_tb = frames * a.frame_mb / 1e6
    db_writes = frames_s + jobs_s * 4 + beats_s
    return [
        f"{owners:,}",
        f"{frames:,}",
        f"{frames_s:.1f}",
        f"{ingest_mb_s:.0f}",
        f"{servers} ({api_cores:.1f} cores)",
        str(worker_hosts),
        f"{math.ceil(store_cores)}",
        f"{raw_tb:.2f} ({2 * raw_tb:.2f})",
        f"{db_writes:.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upload-cpu-s-per-gb", type=float, default=15.1)
    parser.add_argument("--store-cpu-s-per-gb", type=float, default=39.3)
    parser.add_argument("--download-cpu-ms", type=float, default=5.4)
    parser.add_argument("--cycle-cpu-ms", type=float, default=15.2)
    parser.add_argument("--stack-ms-per-frame", type=float, default=64.0)
    parser.add_argument("--frames-per-owner", type=int, default=2_900)
    parser.add_argument("--frame-mb", type=float, default=4.15)
    parser.add_argument("--window-hours", type=float, default=12.0)
    parser.add_argument("--frames-per-job", type=int, default=80)
    parser.add_argument("--frames-per-heartbeat", type=int, default=20)
    parser.add_argument("--server-utilisation", type=float, default=0.5)
    parser.add_argument("--worker-utilisation", type=float, default=0.7)
    args = parser.parse_args()
    header = [
        "owners",
        "frames / night",
        "frames / s",
        "ingest MB/s",
        "API servers, 2 cores (busy cores)",
        "worker hosts (2 cores)",
        "store CPU cores",
        "raws per night TB (×2 replicas)",
        "database row writes / s",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for owners in OWNERS:
        print("| " + " | ".join(row(owners, args)) + " |")


if __name__ == "__main__":
    main()
