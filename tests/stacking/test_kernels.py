"""Kernels load from numba's cache without its context refresh, and compile on a miss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
import numpy as np
from crowdsky.stacking import half
src = np.linspace(-6e4, 6e4, 64 * 64, dtype=np.float32).reshape(64, 64)
src[0, 0] = np.nan
dst = np.empty(src.shape, np.float16)
half.to_half(src, dst)
back = np.empty(src.shape, np.float32)
half.from_half(dst, back)
print(json.dumps({
    "hits": sum(half._to_half.stats.cache_hits.values()),
    "misses": sum(half._to_half.stats.cache_misses.values()),
    "registries_loaded": "numba.np.linalg" in sys.modules,
    "same_as_numpy": bool(np.array_equal(dst, src.astype(np.float16), equal_nan=True)),
    "round_trip": bool(np.array_equal(back, dst.astype(np.float32), equal_nan=True)),
    "bytes": dst.tobytes().hex()[:4000],
}))
"""


def _run(cache_dir: Path) -> dict[str, object]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_miss_compiles_and_a_hit_loads_without_the_registries(tmp_path: Path) -> None:
    first = _run(tmp_path)  # empty cache: numba compiles (and refreshes its contexts)
    assert first["misses"] == 1 and first["hits"] == 0
    assert first["same_as_numpy"] and first["round_trip"]
    second = _run(tmp_path)  # cached: loaded without importing the typing registries
    assert second["hits"] == 1 and second["misses"] == 0
    assert second["registries_loaded"] is False
    assert second["same_as_numpy"] and second["round_trip"]
    assert second["bytes"] == first["bytes"]
