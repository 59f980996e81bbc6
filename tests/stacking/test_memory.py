"""Peak memory stays bounded by ``memory_limit_bytes`` (full-size frames, subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crowdsky.simulate import simulate_sequence

pytestmark = pytest.mark.slow

# Peak RSS of this process only: VmHWM belongs to the address space, which exec replaces.
# (ru_maxrss survives fork+exec on Linux, so a child of a big pytest process would report
# the parent's peak.)
SCRIPT = """
import json, resource, sys
from pathlib import Path
from crowdsky.stacking import StackParams, stack_files

def peak_rss_bytes():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

paths = [Path(p) for p in sys.argv[3:]]
params = StackParams(memory_limit_bytes=int(sys.argv[2]), scratch_dir=Path(sys.argv[1]).parent)
result = stack_files(paths, sys.argv[1], params=params)
print(json.dumps({"rss": peak_rss_bytes(),
                  "storage": result.storage, "scratch": result.scratch_bytes,
                  "n": result.n_aligned}))
"""


def peak_rss(paths: list[Path], out: Path, limit: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), str(limit), *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_peak_rss_bounded_and_flat_in_n(tmp_path: Path) -> None:
    seq = simulate_sequence(tmp_path / "raw", n_frames=24, seed=8, n_stars=200)
    limit = 256 * 1024 * 1024
    # A fresh checkout has no numba cache yet: compiling the kernels' specializations
    # (LLVM) would dominate the peak. One discarded run compiles and caches all the
    # ones this measurement uses, as a worker's first job does.
    peak_rss(seq.paths[:12], tmp_path / "warm-up.fits", limit)
    small = peak_rss(seq.paths[:12], tmp_path / "a.fits", limit)
    large = peak_rss(seq.paths, tmp_path / "b.fits", limit)
    assert small["n"] == 12 and large["n"] == 24
    assert large["storage"] == "disk-float16" and large["scratch"] > 0
    # interpreter + numpy/astropy/OpenCV/numba take ~0.2 GB; the engine's share stays
    # near the limit, and doubling N does not double the peak
    assert large["rss"] < 0.25e9 + 1.6 * limit, (small, large)
    assert large["rss"] < 1.3 * small["rss"], (small, large)
