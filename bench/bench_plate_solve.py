"""Plate-solve time and memory: a long-lived solver vs a fresh process vs solve-field.

Stacks the real M 94 frames once (``../shared/data``; all 32), then measures on a copy
of that stack:

- **long-lived**: ``solve_stack_file`` with one loaded ``PlateSolver`` (as a daemon
  worker keeps it): solve only, and the whole step (read, solve, calibrate, rewrite the
  FITS, star JSON), median of ``--runs``;
- **fresh process**: ``python -c`` that imports, loads the index files and solves once
  (what a ``--once`` worker pays), median of 3;
- **solve-field** (astrometry.net's CLI, a fresh engine per call) on the same star list
  with the same hints, once, for reference;
- RSS of the process before and after loading the index files and the catalogue.

Usage (from the repository root)::

    .venv/bin/python bench/bench_plate_solve.py --runs 5
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAMES = ROOT.parent / "shared" / "data" / "seestar-s50-m94"

FRESH = """
import sys, time
t = time.perf_counter()
from crowdsky.astrometry import PlateSolver, solve_stack_file
r = solve_stack_file(sys.argv[1], PlateSolver.from_directories())
assert r.solved, r.message
print(time.perf_counter() - t)
"""


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def solve_field_seconds(stack: Path, work: Path) -> float | None:
    from astropy.io import fits
    from astropy.table import Table

    if shutil.which("solve-field") is None:
        return None
    with fits.open(stack) as hdul:
        stars = hdul["STAR-TAB"].data
        ra, dec = hdul[0].header["RA_MNT"], hdul[0].header["DEC_MNT"]
    table = Table({"X": stars["x"] + 1, "Y": stars["y"] + 1, "FLUX": stars["flux"]})
    table.sort("FLUX", reverse=True)
    xyls = work / "stars.xyls"
    table.write(xyls, overwrite=True, format="fits")
    t = time.perf_counter()
    subprocess.run(
        [
            "solve-field",
            str(xyls),
            "--width",
            "1080",
            "--height",
            "1920",
            "--overwrite",
            "--no-plots",
            "--scale-units",
            "arcsecperpix",
            "--scale-low",
            "2.2",
            "--scale-high",
            "2.6",
            "--ra",
            str(ra),
            "--dec",
            str(dec),
            "--radius",
            "1",
            "--dir",
            str(work / "sf"),
            "--x-column",
            "X",
            "--y-column",
            "Y",
            "--sort-column",
            "FLUX",
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    from crowdsky.astrometry import PlateSolver, solve_stack_file
    from crowdsky.stacking import stack_files

    frames = sorted(FRAMES.glob("*.fit"))
    if not frames:
        print(f"no frames in {FRAMES}")
        return 1
    with tempfile.TemporaryDirectory(prefix="crowdsky-bench-solve-") as tmp:
        work = Path(tmp)
        master = work / "m94.fits"
        stack_files(frames, master)
        before = rss_mb()
        t = time.perf_counter()
        solver = PlateSolver.from_directories()
        solver.load()
        load_s = time.perf_counter() - t
        loaded = rss_mb()
        step, solve = [], []
        for i in range(args.runs + 1):
            copy = work / f"run{i}.fits"
            shutil.copy(master, copy)
            result = solve_stack_file(copy, solver)
            assert result.solved, result.message
            if i:  # the first run also imports scipy.spatial and touches the mmaps
                step.append(result.total_seconds)
                solve.append(result.solve_seconds)
        after = rss_mb()
        fresh = []
        for i in range(3):
            copy = work / f"fresh{i}.fits"
            shutil.copy(master, copy)
            out = subprocess.run(
                [sys.executable, "-c", FRESH, str(copy)], check=True, capture_output=True, text=True
            )
            fresh.append(float(out.stdout.strip().splitlines()[-1]))
        shutil.copy(master, work / "sf.fits")
        sf = solve_field_seconds(work / "run1.fits", work)
    print(f"index files: {solver.describe()}; catalogue {solver.catalogue.nbytes / 1e6:.0f} MB")
    print(f"load (index mmap + catalogue read): {load_s:.2f} s; RSS {before:.0f} -> "
          f"{loaded:.0f} MB, after {args.runs + 1} solves {after:.0f} MB")  # fmt: skip
    print(f"long-lived: solve {statistics.median(solve):.3f} s, whole step "
          f"{statistics.median(step):.3f} s (median of {args.runs})")  # fmt: skip
    print(f"fresh process (import + load + step): {statistics.median(fresh):.2f} s "
          f"(runs {', '.join(f'{v:.2f}' for v in fresh)})")  # fmt: skip
    if sf is not None:
        print(f"solve-field (fresh astrometry.net engine, same hints): {sf:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
