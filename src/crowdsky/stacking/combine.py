"""Weighted combination of the stored frames with robust rejection, band by band.

:func:`combine_frames` reads the frame store one row band at a time (sized from the
memory budget) and runs the rejection kernel (``rejection.combine_rows``) on slices of
each band in a thread pool: the kernel releases the GIL, and numba's own
``parallel=True`` would cost ~0.5 s per process to start its threading layer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from crowdsky.stacking import memory, rejection
from crowdsky.stacking.frame_store import FrameStore

__all__ = ["CombineOutput", "Normalisation", "Rule", "combine_frames"]

BAND_BYTES_MAX = 192 * 1024 * 1024
"""Upper bound on one row band of float32 samples handed to the kernel."""
RAM_BAND_ROWS = 128
"""Rows per band of an in-RAM float32 store (a view costs nothing; bands only pace progress)."""
NOISE_RATIO_RANGE = (0.25, 4.0)
"""Bounds of a frame's noise relative to the floor when it widens the frame's own band."""


@dataclass(frozen=True, slots=True)
class Normalisation:
    """What puts every stored frame on a common scale, and the noise it is judged by.

    Attributes
    ----------
    offsets : ndarray
        (N, n_channels) background subtracted from each frame's channels.
    scales : ndarray
        (N,) factor applied after subtracting the background (1 / transparency).
    floor : ndarray
        (n_channels,) lower bound of the robust σ per channel, normalised ADU.
    noise : ndarray or None
        (N, n_channels) each frame's background noise in normalised ADU. Rejection
        then measures every sample against its own frame's noise: median and σ come
        from the samples as without noise, and frame i's band is median ± κσ·r_i with
        r_i = noise_i / floor (clipped to :data:`NOISE_RATIO_RANGE`), so frames that
        interpolation smoothed less (such as a reference copied without resampling:
        mono frames, ``demosaic='bilinear'``) are not clipped more often than the
        others. None treats every frame as equally noisy, as does the median; so does
        noise equal to the floor for every frame (the result is then the same).
    """

    offsets: np.ndarray
    scales: np.ndarray
    floor: np.ndarray
    noise: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """How samples are rejected and the survivors combined.

    Attributes
    ----------
    method : {'mean', 'median'}
        Combination of the survivors: weighted mean, or median.
    kappa_low, kappa_high : float
        Clipping thresholds in σ below and above the median.
    max_iterations : int
        Clipping iterations (the loop stops early when nothing changes).
    reject : bool
        False keeps every covered sample.
    """

    method: str = "mean"
    kappa_low: float = 3.0
    kappa_high: float = 3.0
    max_iterations: int = 5
    reject: bool = True


@dataclass(frozen=True, slots=True)
class CombineOutput:
    """Result of :func:`combine_frames`.

    Attributes
    ----------
    image : ndarray
        (H, W·C) float32 combination; NaN where no frame covers.
    coverage : ndarray
        (H, W) uint16 number of frames covering each pixel.
    rejected_per_frame : ndarray
        (N,) int64 pixel values rejected per frame.
    covered_per_frame : ndarray
        (N,) int64 pixel values each frame covers.
    n_bands : int
        Row bands processed.
    """

    image: np.ndarray
    coverage: np.ndarray
    rejected_per_frame: np.ndarray
    covered_per_frame: np.ndarray
    n_bands: int


def combine_frames(
    store: FrameStore,
    n_channels: int,
    weights: np.ndarray,
    normalisation: Normalisation,
    rule: Rule,
    *,
    band_budget_bytes: int,
    n_threads: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> CombineOutput:
    """Combine the stored frames band by band.

    Parameters
    ----------
    store : FrameStore
        The aligned frames.
    n_channels : int
        Channels interleaved along the last axis (3 for RGB, 1 for mono).
    weights : ndarray
        (N,) frame weights (> 0) of the weighted mean.
    normalisation : Normalisation
        Each frame's background, scale and noise, and the σ floor.
    rule : Rule
        Rejection thresholds and the combination of the survivors.
    band_budget_bytes : int
        Bytes of float32 samples per band (capped at :data:`BAND_BYTES_MAX`).
    n_threads : int
        Threads running the kernel on row slices of each band.
    progress : callable or None
        Called with (bands done, bands total).

    Returns
    -------
    CombineOutput
    """
    n, rows, cols = store.n_frames, store.rows, store.cols
    band_rows = _band_rows(store, band_budget_bytes)
    n_bands = math.ceil(rows / band_rows)
    out = memory.empty((rows, cols), np.float32)
    coverage = np.empty((rows, cols // n_channels), dtype=np.uint16)
    rejected = np.zeros((rows, n), dtype=np.int64)
    covered = np.zeros((rows, n), dtype=np.int64)
    frames, mode = _frame_terms(n_channels, weights, normalisation, rule)
    estimator = _estimator(n, normalisation.floor, n_channels)
    with ThreadPoolExecutor(max(1, n_threads)) as pool:
        for b in range(n_bands):
            r0, r1 = b * band_rows, min(rows, (b + 1) * band_rows)
            band, first = store.band_rows(r0, r1)
            cuts = np.linspace(0, r1 - r0, max(1, n_threads) * 2 + 1).round().astype(int)
            jobs = [
                pool.submit(
                    rejection.combine_rows,
                    band,
                    first + a,
                    first + z,
                    frames,
                    estimator,
                    mode,
                    rejection.Totals(
                        out[r0 + a : r0 + z],
                        coverage[r0 + a : r0 + z],
                        rejected[r0 + a : r0 + z],
                        covered[r0 + a : r0 + z],
                    ),
                )
                for a, z in itertools.pairwise(cuts)
                if z > a
            ]
            for job in jobs:
                job.result()
            if progress is not None:
                progress(b + 1, n_bands)
    return CombineOutput(out, coverage, rejected.sum(axis=0), covered.sum(axis=0), n_bands)


def warm_up() -> None:
    """Load the compiled kernel (numba's cache) by running it on a tiny input.

    The first call in a process pays for LLVM's start-up and the cache load;
    ``stack_files`` calls this in a background thread while frames are being
    analysed, so the cost overlaps I/O and detection instead of adding to them.
    """
    n, rows, cols = 3, 2, rejection.COLUMN_CHUNK
    store = FrameStore(n, rows, cols, "ram-float32", np.zeros((n, rows, cols), np.float32))
    combine_frames(
        store,
        3,
        np.ones(n),
        Normalisation(offsets=np.zeros((n, 3)), scales=np.ones(n), floor=np.ones(3)),
        Rule(max_iterations=1),
        band_budget_bytes=1 << 20,
        n_threads=1,
    )


def _band_rows(store: FrameStore, band_budget_bytes: int) -> int:
    """Rows per band: as many as the budget holds for every frame."""
    if store.kind == "ram-float32":
        return min(store.rows, RAM_BAND_ROWS)
    budget = min(band_budget_bytes, BAND_BYTES_MAX)
    return max(1, min(store.rows, budget // max(1, store.n_frames * store.cols * 4)))


def _frame_terms(
    n_channels: int, weights: np.ndarray, normalisation: Normalisation, rule: Rule
) -> tuple[rejection.FrameTerms, rejection.Mode]:
    """The per-frame arrays and the mode flags of the kernel."""
    n = len(weights)
    repeats = rejection.COLUMN_CHUNK // n_channels
    offsets = np.asarray(normalisation.offsets, dtype=np.float32).reshape(n, n_channels)
    relative: np.ndarray
    if normalisation.noise is None or rule.method == "median":  # median: one band
        relative = np.ones((n, n_channels), dtype=np.float32)
    else:
        floor = np.asarray(normalisation.floor, dtype=np.float32).reshape(1, n_channels)
        relative = np.asarray(normalisation.noise, dtype=np.float32).reshape(n, n_channels)
        relative = relative / np.maximum(floor, 1e-6)
        relative = np.clip(np.nan_to_num(relative, nan=1.0), *NOISE_RATIO_RANGE)
    frames = rejection.FrameTerms(
        offsets=np.ascontiguousarray(np.tile(offsets, (1, repeats))),
        scales=np.ascontiguousarray(normalisation.scales, dtype=np.float32),
        gains=np.ascontiguousarray(np.tile(1.0 / relative, (1, repeats))),
        weights=np.ascontiguousarray(weights, dtype=np.float64),
    )
    mode = rejection.Mode(
        kappa_low=float(rule.kappa_low),
        kappa_high=float(rule.kappa_high),
        max_iterations=int(rule.max_iterations),
        use_median=rule.method == "median",
        reject=bool(rule.reject),
        whiten=bool(np.any(relative != 1.0)),
    )
    return frames, mode


def _estimator(n_frames: int, floor: np.ndarray, n_channels: int) -> rejection.Estimator:
    """Every frame up to :data:`rejection.SORT_NETWORK_MAX`, else an evenly spaced subset."""
    if n_frames <= rejection.SORT_NETWORK_MAX:
        subset = np.arange(n_frames, dtype=np.int64)
    else:
        spaced = np.linspace(0, n_frames - 1, rejection.SORT_NETWORK_MAX).round().astype(np.int64)
        subset = np.unique(spaced)
    fl = np.ascontiguousarray(floor, dtype=np.float64)
    return rejection.Estimator(
        subset=subset,
        comps=rejection.sorting_network(len(subset)),
        floor=fl,
        floor_pattern=np.ascontiguousarray(np.tile(fl, rejection.COLUMN_CHUNK // n_channels)),
    )
