"""Run seestarpy 0.1.3's FrameCollection on a list of frames (bench helper).

Executed by ``bench/bench_stacking.py`` with the interpreter of a separate virtual
environment that has ``seestarpy==0.1.3`` installed; imports nothing from CrowdSky.
Usage: ``python stacking_run_seestarpy.py LIST_FILE OUTPUT.fits``; prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import warnings
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
    warnings.simplefilter("ignore")
    from seestarpy.stacking.stacking import FrameCollection

    t1 = time.perf_counter()
    paths = [Path(line) for line in Path(sys.argv[1]).read_text().splitlines() if line]
    collection = FrameCollection(paths)
    collection.process(method="mean", sigma_clip=3.0)
    collection.save(sys.argv[2])
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
                "scratch_bytes": 0,
                "n_aligned": None,
            }
        )
    )


if __name__ == "__main__":
    main()
