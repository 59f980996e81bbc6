"""Run CrowdSky's ``stack_files`` on a list of frames (bench helper).

Usage: ``python stacking_run_crowdsky.py LIST_FILE OUTPUT.fits [INTERPOLATION]``; prints one
JSON line
with import and stacking time, peak RSS (``VmHWM``; ``ru_maxrss`` would include the parent's
peak, which Linux carries across fork+exec), bytes written and the
engine's own figures (scratch bytes, storage, per-stage timings).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def _peak_rss_bytes() -> int:
    """This process's peak RSS (VmHWM, reset by exec; ru_maxrss is not)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    t0 = time.perf_counter()
    from crowdsky.stacking import StackParams, stack_files

    t1 = time.perf_counter()
    paths = [Path(line) for line in Path(sys.argv[1]).read_text().splitlines() if line]
    params = StackParams(method="mean", sigma_clip=3.0)
    if len(sys.argv) > 3:
        params = params.replace(interpolation=sys.argv[3])
    result = stack_files(paths, sys.argv[2], params=params)
    t2 = time.perf_counter()
    io_counts = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    print(
        json.dumps(
            {
                "import_s": t1 - t0,
                "stack_s": t2 - t1,
                "peak_rss_bytes": _peak_rss_bytes(),
                "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
                "write_bytes": int(io_counts.get("write_bytes", 0)),
                "scratch_bytes": result.scratch_bytes,
                "storage": result.storage,
                "n_aligned": result.n_aligned,
                "stages_s": result.timings_s,
            }
        )
    )


if __name__ == "__main__":
    main()
