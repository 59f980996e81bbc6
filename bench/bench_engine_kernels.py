"""Speed and output digests of the engine's two numba hot spots, on synthetic data.

The combination kernel (``combine.combine_frames`` on an in-RAM store, one thread, in
ns per sample) and the separable resampler (``resample.warp_lattices`` on a full-size
S50 mosaic, ms per frame), each with a SHA-256 prefix of its output: a change that
should not alter results must leave the digests as they are, and the times can be
compared with another commit's in the same sitting::

    PYTHONPATH=<checkout of the other commit>/src .venv/bin/python bench/bench_engine_kernels.py
    .venv/bin/python bench/bench_engine_kernels.py

Commits from before the combination's records (issue 12) took the same inputs as
keyword arguments; this script calls either form, so the two can be compared.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

ROWS, COLS = 160, 3240  # a band of an RGB S50 frame (1080 columns × 3 channels)
COMBINE_CASES = (  # name, frames, channels, method, per-frame noise, rejection
    ("rgb15-mean-noise", 15, 3, "mean", True, True),
    ("rgb15-mean", 15, 3, "mean", False, True),
    ("rgb15-median", 15, 3, "median", False, True),
    ("rgb15-no-rejection", 15, 3, "mean", False, False),
    ("rgb32-mean-noise", 32, 3, "mean", True, True),
    ("mono2-mean", 2, 1, "mean", True, True),
    ("mono5-mean-noise", 5, 1, "mean", True, True),
)
WARP_CASES = {  # output -> mosaic maps: a shift, 1.1° of rotation, 8° with 1 % scale
    "shift": np.array([[1.0, 0.0, 3.3], [0.0, 1.0, -7.6]]),
    "rotation1": np.array(
        [[np.cos(0.02), -np.sin(0.02), 12.3], [np.sin(0.02), np.cos(0.02), -20.1]]
    ),
    "rotation8-scaled": 1.01
    * np.array([[np.cos(0.14), -np.sin(0.14), 120.3], [np.sin(0.14), np.cos(0.14), -80.1]]),
}


def synthetic_cube(n: int, seed: int) -> np.ndarray:
    """Sky with a bright plateau, a trail, and uncovered edges and holes."""
    rng = np.random.default_rng(seed)
    cube = rng.normal(100.0, 5.0, (n, ROWS, COLS)).astype(np.float32)
    cube[:, :, 300:500] += 2000.0
    cube[n // 3, ROWS // 2, :] += 500.0
    cube[0, :, :40] = np.nan
    cube[1:, :, -7:] = np.nan
    cube[min(2, n - 1), 10:14, 1000:1400] = np.nan
    return cube


def combine_once(cube: np.ndarray, case: tuple[Any, ...]) -> Any:
    """One call of combine_frames with fixed, seeded weights, offsets and noise."""
    from crowdsky.stacking import combine

    _, n, n_channels, method, with_noise, reject = case
    rng = np.random.default_rng(5)
    weights = rng.uniform(0.5, 1.5, n)
    floor = np.full(n_channels, 5.0)
    offsets = rng.normal(100.0, 1.0, (n, n_channels))
    scales = rng.uniform(0.9, 1.1, n)
    noise = rng.uniform(4.0, 6.5, (n, n_channels)) if with_noise else None
    rule = dict(kappa_low=3.0, kappa_high=2.5, max_iterations=5, reject=reject)
    if hasattr(combine, "Normalisation"):
        from crowdsky.stacking.frame_store import FrameStore

        store = FrameStore(n, ROWS, COLS, "ram-float32", cube)
        norm = combine.Normalisation(offsets=offsets, scales=scales, floor=floor, noise=noise)
        return combine.combine_frames(
            store,
            n_channels,
            weights,
            norm,
            combine.Rule(method=method, **rule),  # type: ignore[arg-type]
            band_budget_bytes=1 << 26,
            n_threads=1,
        )
    store = combine.FrameStore(n, ROWS, COLS, "ram-float32", cube)  # type: ignore[attr-defined]
    return combine.combine_frames(  # type: ignore[call-arg]
        store,
        n_channels,
        weights,
        floor,
        offsets=offsets,
        scales=scales,
        method=method,
        noise=noise,
        band_budget_bytes=1 << 26,
        n_threads=1,
        **rule,
    )


def timed(call: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median and minimum wall time of ``repeats`` calls, seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main() -> None:
    """Print one line per case: digest, median and minimum time."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9, help="timed calls per case")
    args = parser.parse_args()
    from crowdsky.stacking import resample

    for case in COMBINE_CASES:
        cube = synthetic_cube(case[1], zlib.crc32(case[0].encode()))
        out = combine_once(cube, case)  # also loads the kernel
        sha = hashlib.sha256()
        for array in (out.image, out.coverage, out.rejected_per_frame, out.covered_per_frame):
            sha.update(np.ascontiguousarray(array).tobytes())
        median, best = timed(lambda: combine_once(cube, case), args.repeats)  # noqa: B023
        print(
            f"combine {case[0]:25s} {sha.hexdigest()[:16]}  "
            f"{median / cube.size * 1e9:.3f} ns/sample (min {best / cube.size * 1e9:.3f})"
        )
    mosaic = np.random.default_rng(4).integers(0, 60000, (1920, 1080), dtype=np.uint16)
    sites = [(0, 1), (0, 0), (1, 1), (1, 0)]
    dst = np.empty((1920, 1080, 3), np.float32)
    work = np.empty((4, 960, 1080), np.float32)
    for kernel in resample.KERNELS:
        for name, inverse in WARP_CASES.items():

            def warp(inverse: np.ndarray = inverse, kernel: str = kernel) -> None:
                resample.warp_lattices(mosaic, sites, inverse, dst, work, kernel)

            warp()
            digest = hashlib.sha256(dst.tobytes()).hexdigest()[:16]
            median, best = timed(warp, args.repeats)
            label = f"{kernel}/{name}"
            print(
                f"warp    {label:25s} {digest}  {median * 1e3:.2f} ms/frame (min {best * 1e3:.2f})"
            )


if __name__ == "__main__":
    main()
