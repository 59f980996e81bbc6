"""Where a warm stack's time goes: per-stage medians of repeated calls in one process.

The quick companion of ``bench_stacking.py`` for work on the engine: stacks the first
``--frames`` frames of ``--dir`` (default: the real ``../shared/data/seestar-s50-m94``)
``--calls`` times in this process (the first call pays the one-time loading and is
left out) and prints the median wall time and the median of each stage of
``StackResult.timings_s``, plus the process's CPU time per call.

Usage (from the project root)::

    .venv/bin/python bench/bench_stacking_stages.py [--frames 15] [--calls 6] [--threads 2]
        [--dir FOLDER]   (e.g. the simulated frames bench_stacking.py leaves in its work dir)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_DIR = ROOT.parent / "shared" / "data" / "seestar-s50-m94"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=15)
    parser.add_argument("--calls", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--dir", type=Path, default=REAL_DIR, help="folder of frames (default: the real M 94)"
    )
    args = parser.parse_args()
    frames = sorted(args.dir.glob("*.fit*"))[: args.frames]
    if len(frames) < args.frames:
        sys.exit(f"need {args.frames} frames in {args.dir}")
    from crowdsky.stacking import StackParams, stack_files

    params = StackParams(n_threads=args.threads)
    walls: list[float] = []
    cpus: list[float] = []
    stages: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "stack.fits"
        for call in range(max(2, args.calls)):
            cpu, wall = os.times(), time.perf_counter()
            result = stack_files(frames, output, params=params)
            wall, cpu_end = time.perf_counter() - wall, os.times()
            if call == 0:
                continue
            walls.append(wall)
            cpus.append(cpu_end.user - cpu.user + cpu_end.system - cpu.system)
            for name, seconds in result.timings_s.items():
                stages.setdefault(name, []).append(seconds)
    median = statistics.median(walls)
    print(
        f"{args.frames} frames, {len(walls)} warm calls: median wall {median:.3f} s"
        f" (min {min(walls):.3f}, max {max(walls):.3f}), CPU {statistics.median(cpus):.3f} s"
    )
    print(
        "stages (median s): "
        + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in stages.items() if k != "total")
    )


if __name__ == "__main__":
    main()
