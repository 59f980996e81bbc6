"""Run CrowdSky's ``stack_files`` on a list of frames (bench helper).

Usage: ``python stacking_run_crowdsky.py LIST_FILE OUTPUT.fits [--warm K] [--params JSON]``;
prints one JSON line with import and stacking time of the first call (a fresh
process), the wall and CPU seconds of ``K`` further calls in the same process (what
a long-lived worker sees), peak RSS (``VmHWM``; ``ru_maxrss`` would include the
parent's peak, which Linux carries across fork+exec), bytes written and the engine's
own figures (scratch bytes, storage, per-stage timings). ``--params`` overrides
:class:`~crowdsky.stacking.StackParams` fields. Like ``crowdsky stack``, the process
ends without the interpreter's teardown once everything is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from stacking_run_common import peak_rss_bytes, process_figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("listing", type=Path)
    parser.add_argument("output")
    parser.add_argument("--warm", type=int, default=0)
    parser.add_argument("--params", default="{}")
    args = parser.parse_args()
    t0 = time.perf_counter()
    from crowdsky.stacking import StackParams, stack_files

    t1 = time.perf_counter()
    paths = [Path(line) for line in args.listing.read_text().splitlines() if line]
    params = StackParams(method="mean", sigma_clip=3.0).replace(**json.loads(args.params))
    result = stack_files(paths, args.output, params=params)
    t2 = time.perf_counter()
    figures = process_figures()  # the fresh call alone
    warm = []
    for _ in range(args.warm):
        c, t = time.process_time(), time.perf_counter()
        stack_files(paths, args.output, params=params)
        warm.append({"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c})
    figures.update(
        import_s=t1 - t0,
        stack_s=t2 - t1,
        warm=warm,
        peak_rss_bytes=peak_rss_bytes(),
        scratch_bytes=result.scratch_bytes,
        storage=result.storage,
        n_aligned=result.n_aligned,
        stages_s=result.timings_s,
    )
    print(json.dumps(figures), flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
