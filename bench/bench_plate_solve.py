"""Plate-solve time and memory: a long-lived solver vs a fresh process vs solve-field.

Stacks the real M 94 frames once (``../shared/data``; all 32), then measures on a copy
of that stack:

- **long-lived**: ``solve_stack_file`` with one loaded ``PlateSolver`` (as a daemon
  worker keeps it): solve only, and the whole step (read, solve, calibrate, rewrite the
  FITS, star JSON), median of ``--runs``;
- **fresh process**: ``python -c`` that imports, loads the index files and solves once,
  median of 3;
- **fresh worker**: what the solve step adds to the first job of a ``--once`` worker: a
  process that calls ``StackPlateSolver.prepare()`` when it claims the job (as the
  worker does), stacks the frames, then times ``StackPlateSolver.solve``; median of 3;
- **solve-field** (astrometry.net's CLI, a fresh engine per call) on the same star list
  with the same hints, once, for reference;
- memory: RSS of the process before and after loading and after the solves, split
  into private memory and mapped file pages (``RssAnon``/``RssFile``: the index files'
  pages are shared page cache).

Wall times on a shared machine mostly measure the wait for a core; each figure also
has its CPU time (``time.process_time`` of the process, all threads), which the load
barely moves. ``--anchor SRC`` runs every measurement a second time with
``PYTHONPATH=SRC`` (say, the ``src`` of a ``git archive main``) in the same run, for
before/after ratios.

Usage (from the repository root)::

    .venv/bin/python bench/bench_plate_solve.py --runs 5 [--anchor /tmp/main/src]
"""

from __future__ import annotations

import argparse
import json
import os
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
t, c = time.perf_counter(), time.process_time()
from crowdsky.astrometry import PlateSolver, solve_stack_file
r = solve_stack_file(sys.argv[1], PlateSolver.from_directories())
assert r.solved, r.message
print(time.perf_counter() - t, time.process_time() - c)
"""

FRESH_WORKER = """
import sys, time
from pathlib import Path
from crowdsky.stacking import stack_files
from crowdsky.worker.plate_solving import StackPlateSolver
step = StackPlateSolver()
step.prepare()  # the worker calls this when it claims the job
frames = sorted(Path(sys.argv[2]).glob("*.fit"))
stack_files(frames, Path(sys.argv[1]))
t, c = time.perf_counter(), time.process_time()
done = step.solve(Path(sys.argv[1]))
assert done.solved, done.message
print(time.perf_counter() - t, time.process_time() - c)
"""


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_split_mb() -> tuple[float, float]:
    """(RssAnon, RssFile) of this process, MB: private memory and mapped file pages."""
    found = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("RssAnon:", "RssFile:")):
                found[line.split(":")[0]] = int(line.split()[1]) / 1024
    return found.get("RssAnon", 0.0), found.get("RssFile", 0.0)


def solve_field_seconds(stack: Path, work: Path) -> float | None:
    from astropy.io import fits
    from astropy.table import Table

    if shutil.which("solve-field") is None:
        return None
    with fits.open(stack) as hdul:
        stars = hdul["STAR-TAB"].data
        header = hdul[0].header  # the mount's pointing (RA_MNT once solved)
        ra, dec = header.get("RA_MNT", header["RA"]), header.get("DEC_MNT", header["DEC"])
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


def measure(master: Path, runs: int, work: Path) -> dict[str, float]:
    """Load, long-lived solves and memory in this process (the code on sys.path)."""
    from crowdsky.astrometry import PlateSolver, solve_stack_file

    before = rss_mb()
    t = time.perf_counter()
    solver = PlateSolver.from_directories()
    solver.load()
    load_s = time.perf_counter() - t
    loaded = rss_mb()
    step, solve, cpu = [], [], []
    for i in range(runs + 1):
        copy = work / f"run{i}.fits"
        shutil.copy(master, copy)
        started = time.process_time()
        result = solve_stack_file(copy, solver)
        assert result.solved, result.message
        if i:  # the first run also touches the mapped pages
            cpu.append(time.process_time() - started)
            step.append(result.total_seconds)
            solve.append(result.solve_seconds)
        copy.unlink()
    return {
        "load_s": load_s,
        "rss_before_mb": before,
        "rss_loaded_mb": loaded,
        "rss_after_mb": rss_mb(),
        "rss_anon_mb": rss_split_mb()[0],
        "rss_file_mb": rss_split_mb()[1],
        "catalogue_cache_mb": getattr(solver.catalogue, "nbytes", 0) / 1e6,
        "solve_s": statistics.median(solve),
        "step_s": statistics.median(step),
        "step_cpu_s": statistics.median(cpu),
        "index_files": solver.describe(),  # type: ignore[dict-item]
    }


def variant(src: Path, master: Path, runs: int, work: Path) -> dict[str, object]:
    """Every measurement with ``src`` first on PYTHONPATH, in child processes."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    sub = work / src.parent.name
    sub.mkdir(exist_ok=True)
    out = subprocess.run(
        [sys.executable, __file__, "--measure", str(master), "--runs", str(runs)],
        check=True, capture_output=True, text=True, env=env, cwd=sub,
    )  # fmt: skip
    figures: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    fresh, worker, fresh_cpu, worker_cpu = [], [], [], []
    for i in range(3):
        copy = sub / f"fresh{i}.fits"
        shutil.copy(master, copy)
        out = subprocess.run(
            [sys.executable, "-c", FRESH, str(copy)],
            check=True, capture_output=True, text=True, env=env,
        )  # fmt: skip
        wall, cpu = out.stdout.strip().splitlines()[-1].split()
        fresh.append(float(wall))
        fresh_cpu.append(float(cpu))
        out = subprocess.run(
            [sys.executable, "-c", FRESH_WORKER, str(sub / f"worker{i}.fits"), str(FRAMES)],
            check=True, capture_output=True, text=True, env=env,
        )  # fmt: skip
        wall, cpu = out.stdout.strip().splitlines()[-1].split()
        worker.append(float(wall))
        worker_cpu.append(float(cpu))
    figures["fresh_s"] = statistics.median(fresh)
    figures["fresh_runs"] = fresh
    figures["fresh_worker_s"] = statistics.median(worker)
    figures["fresh_worker_runs"] = worker
    figures["fresh_cpu_s"] = statistics.median(fresh_cpu)
    figures["fresh_worker_cpu_s"] = statistics.median(worker_cpu)
    return figures


RATIO_KEYS = (
    "solve_s", "step_s", "step_cpu_s", "fresh_s", "fresh_cpu_s", "fresh_worker_s",
    "fresh_worker_cpu_s", "rss_after_mb",
)  # fmt: skip


def report(label: str, f: dict[str, object]) -> None:
    def runs(key: str) -> str:
        return ", ".join(f"{v:.2f}" for v in f[key])  # type: ignore[attr-defined]

    print(f"[{label}] index files: {f['index_files']}")
    print(f"[{label}] load: {f['load_s']:.3f} s; RSS {f['rss_before_mb']:.0f} -> "
          f"{f['rss_loaded_mb']:.0f} MB after load, {f['rss_after_mb']:.0f} MB after the "
          f"solves (private {f['rss_anon_mb']:.0f} MB, mapped files {f['rss_file_mb']:.0f} MB), "
          f"catalogue held {f['catalogue_cache_mb']:.1f} MB")  # fmt: skip
    print(f"[{label}] long-lived: solve {f['solve_s']:.3f} s, whole step {f['step_s']:.3f} s "
          f"(CPU {f['step_cpu_s']:.3f} s)")  # fmt: skip
    print(f"[{label}] fresh process (import + load + step): {f['fresh_s']:.2f} s "
          f"({runs('fresh_runs')}; CPU {f['fresh_cpu_s']:.2f} s)")  # fmt: skip
    print(f"[{label}] fresh worker, solve step after its first stack: "
          f"{f['fresh_worker_s']:.3f} s ({runs('fresh_worker_runs')}; "
          f"CPU {f['fresh_worker_cpu_s']:.3f} s)", flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--anchor", type=Path, help="src folder of the code to compare with")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure is not None:  # child process of variant()
        print(json.dumps(measure(args.measure, args.runs, Path.cwd())))
        return 0
    from crowdsky.stacking import stack_files

    frames = sorted(FRAMES.glob("*.fit"))
    if not frames:
        print(f"no frames in {FRAMES}")
        return 1
    with tempfile.TemporaryDirectory(prefix="crowdsky-bench-solve-") as tmp:
        work = Path(tmp)
        master = work / "m94.fits"
        stack_files(frames, master)
        variants = {"this": ROOT / "src"}
        if args.anchor is not None:
            variants = {"anchor": args.anchor.resolve(), **variants}
        results = {}
        for label, src in variants.items():
            results[label] = variant(src, master, args.runs, work)
            report(label, results[label])
        sf = solve_field_seconds(master, work)
    if "anchor" in results:
        a, b = results["anchor"], results["this"]
        ratios = ", ".join(
            f"{key} {float(b[key]) / float(a[key]):.2f}"  # type: ignore[arg-type]
            for key in RATIO_KEYS
        )
        print(f"this / anchor: {ratios}")
    if sf is not None:
        print(f"solve-field (fresh astrometry.net engine, same hints): {sf:.2f} s")
    print("load average now: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
