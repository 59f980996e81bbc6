"""Run seestarpy 0.1.3's FrameCollection on a list of frames (bench helper).

Executed by ``bench/bench_stacking.py`` with the interpreter of a separate virtual
environment that has ``seestarpy==0.1.3`` installed; imports nothing from CrowdSky
(``stacking_run_common`` is a standard-library helper beside this file).
Usage: ``python stacking_run_seestarpy.py LIST_FILE OUTPUT.fits [--warm K]``; prints
one JSON line with the same fields as ``stacking_run_crowdsky.py``. Each call builds
a new ``FrameCollection`` (reading the files again), as the original worker did per
job.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from stacking_run_common import peak_rss_bytes, process_figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("listing", type=Path)
    parser.add_argument("output")
    parser.add_argument("--warm", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    warnings.simplefilter("ignore")
    from seestarpy.stacking.stacking import FrameCollection

    t1 = time.perf_counter()
    paths = [Path(line) for line in args.listing.read_text().splitlines() if line]

    def stack() -> None:
        collection = FrameCollection(paths)
        collection.process(method="mean", sigma_clip=3.0)
        collection.save(args.output)

    stack()
    t2 = time.perf_counter()
    figures = process_figures()
    warm = []
    for _ in range(args.warm):
        c, t = time.process_time(), time.perf_counter()
        stack()
        warm.append({"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c})
    figures.update(
        import_s=t1 - t0,
        stack_s=t2 - t1,
        warm=warm,
        peak_rss_bytes=peak_rss_bytes(),
        scratch_bytes=0,
        n_aligned=None,
    )
    print(json.dumps(figures), flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
