"""Warm-process timing of ``stack_files`` (bench helper): what a long-lived worker sees.

The process imports the engine and stacks once (imports, numba's kernel load and
first-touch costs paid), then stacks the same frames ``--repeats`` more times and
prints the median wall and CPU time. Usage (from the project root)::

    .venv/bin/python bench/stacking_warm.py [--frames 15,32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_DIR = ROOT.parent / "shared" / "data" / "seestar-s50-m94"


def main() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from crowdsky.stacking import stack_files

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", default="15,32")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    files = sorted(REAL_DIR.glob("*.fit"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "warm.fits"
        for n in (int(x) for x in args.frames.split(",")):
            stack_files(files[:n], out)
            walls, cpus = [], []
            for _ in range(args.repeats):
                c, t = time.process_time(), time.perf_counter()
                stack_files(files[:n], out)
                walls.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
            print(
                f"{n} real frames, warm process: wall median {statistics.median(walls):.2f} s "
                f"(min {min(walls):.2f}, max {max(walls):.2f}), "
                f"CPU median {statistics.median(cpus):.2f} s over {args.repeats} runs"
            )


if __name__ == "__main__":
    main()
