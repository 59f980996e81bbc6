"""``stack_files``: runs the steps of a stack, owns its memory budget, reports progress.

Each step is a function of a sibling module; this module sequences them over a
:class:`_Run` (the call's inputs, every frame's state, the stage timings), sizes the
frame store from ``memory_limit_bytes`` and keeps every frame's record. Both cores
are used: a thread pool for per-frame work (numpy, OpenCV and sep release the GIL)
and for the combination kernel. Identical input gives identical output: no random
numbers, results gathered in input order.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crowdsky.stacking import (
    alignment,
    analysis,
    detect,
    errors,
    header,
    io,
    memory,
    quality,
    result,
    screening,
    warp,
)
from crowdsky.stacking.analysis import FrameState
from crowdsky.stacking.params import StackParams
from crowdsky.stacking.result import FrameRecord, StackProgress, StackResult

if TYPE_CHECKING:  # both import numba: loaded by the warm-up, off the caller's thread
    from crowdsky.stacking.combine import CombineOutput
    from crowdsky.stacking.frame_store import FrameStore

__all__ = ["prepare", "stack_files"]

log = logging.getLogger(__name__)

MOSAIC_CACHE_FRACTION = 0.15
"""Share of the memory budget that may keep raw frames between analysis and warping
(re-reading a frame costs ~3 ms, so beyond this they are simply read again)."""
WORKING_BYTES_PER_THREAD_FACTOR = 4.5
"""Frame-sized float32 RGB buffers alive per resampling thread, at most: the bilinear
path holds uint16 RGB, float RGB, the warped frame and the blended warp's scratch; the
CFA path four one-channel colour planes and a scratch plane."""
BAND_BYTES_RAM16 = 48 * 1024 * 1024
"""Row band converted from in-RAM float16 at a time (conversion is cheap; memory is not)."""
BAND_BYTES_MIN = 16 * 1024 * 1024
"""Smallest row band read from a scratch file."""
FIXED_OVERHEAD_BYTES = 48 * 1024 * 1024


class _Reporter:
    def __init__(self, callback: Callable[[StackProgress], None] | None) -> None:
        self.callback = callback

    def __call__(self, stage: str, done: int, total: int, message: str = "") -> None:
        if self.callback is not None:
            self.callback(StackProgress(stage, done, total, message))


@dataclass(slots=True)
class _Run:
    """One call of ``stack_files``: its inputs, every frame's state, the stage timings."""

    paths: list[Path]
    output: Path
    params: StackParams
    report: _Reporter
    frames: list[FrameState]
    timings: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage; the times of a stage entered twice add up."""
        start = time.perf_counter()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


@dataclass(frozen=True, slots=True)
class _Combination:
    """The combined image and how it was made."""

    image: np.ndarray  # (H, W, C) float32 in the reference's ADU, NaN where uncovered
    coverage: np.ndarray  # (H, W) uint16 frames covering each pixel
    storage: str  # the frame store's kind
    scratch_bytes: int


@dataclass(frozen=True, slots=True)
class _Exposure:
    """Exposure and pointing of the stacked frames, for the header and the result."""

    total_exptime_s: float
    date_start: datetime | None
    date_end: datetime | None
    ra_deg: float | None
    dec_deg: float | None


def stack_files(
    fits_paths: Sequence[Path | str],
    output_path: Path | str,
    method: str = "mean",
    sigma_clip: float = 3.0,
    *,
    params: StackParams | None = None,
    progress: Callable[[StackProgress], None] | None = None,
) -> StackResult:
    """Register, reject, combine and write a stack of Seestar (or other) FITS frames.

    Parameters
    ----------
    fits_paths : sequence of Path or str
        Input frames: Bayer mosaics (BAYERPAT read per file), mono images or RGB cubes.
    output_path : Path or str
        Multi-extension FITS to write (PRIMARY header, RED/GREEN/BLUE, FOOTPRINT,
        STAR-TAB, FRAMES). Written atomically.
    method : {'mean', 'median'}
        Combination of surviving pixels; ignored when ``params`` is given.
    sigma_clip : float
        Rejection threshold κ (robust σ); ignored when ``params`` is given.
    params : StackParams or None
        Every parameter; default ``StackParams(method=method, sigma_clip=sigma_clip)``.
    progress : callable or None
        Receives :class:`StackProgress` events, always from the calling thread.

    Returns
    -------
    StackResult
        ``total_exptime`` is summed over the *stacked* frames only; ``n_aligned`` counts
        stacked frames; every input frame has a :class:`FrameRecord`.

    Raises
    ------
    InvalidInput
        No paths, a path that does not exist, or invalid parameters.
    NoUsableFrames
        Every frame was rejected (the message lists each frame's reason).
    OutputError
        The output or a scratch file could not be written.
    StackingError
        Any other failure, with the original exception chained.
    """
    if params is None:
        params = StackParams(method=method, sigma_clip=sigma_clip)
    paths = [Path(p) for p in fits_paths]
    if not paths:
        raise errors.InvalidInput("no input frames given")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise errors.InvalidInput("input file(s) not found: " + ", ".join(missing))
    output = Path(output_path)
    try:
        return _pipeline(paths, output, params, _Reporter(progress), prepare())
    except errors.StackingError:
        raise
    except MemoryError as exc:
        raise errors.StackingError(
            f"out of memory while stacking {len(paths)} frames; lower memory_limit_bytes"
        ) from exc
    except Exception as exc:
        raise errors.StackingError(f"stacking failed: {type(exc).__name__}: {exc}") from exc


_warm_lock = threading.Lock()
_warming: Future[None] | None = None


def prepare() -> Future[None]:
    """Start loading the engine's compiled kernels in the background.

    Once per process: the first stack of a fresh process otherwise spends ~0.2–0.3 s
    on numba's import and kernel loading before it can warp (``stack_files``
    overlaps that with its analysis of the frames; a worker calls this at start-up,
    so it overlaps claiming and downloading the first job too). Returns the future of
    that work; after a failure the next call tries again.
    """
    global _warming
    with _warm_lock:
        failed = _warming is not None and _warming.done() and _warming.exception() is not None
        if _warming is None or failed:
            pool = ThreadPoolExecutor(1, thread_name_prefix="crowdsky-warm-up")
            _warming = pool.submit(_warm_up_kernels)
            pool.shutdown(wait=False)  # the thread ends when the work is done
        return _warming


def _pipeline(
    paths: list[Path],
    output: Path,
    params: StackParams,
    report: _Reporter,
    warming: Future[None],
) -> StackResult:
    """The seven steps in order, each timed into ``StackResult.timings_s``."""
    started = time.perf_counter()
    # buffers kept from earlier stacks still count in RSS: no more than this stack's budget
    memory.trim(params.memory_limit_bytes)
    frames = [FrameState(FrameRecord(path=p, index=i)) for i, p in enumerate(paths)]
    run = _Run(paths, output, params, report, frames)
    detect.configure_sep()
    with run.stage("analyse"):
        _analyse_frames(run)
    with run.stage("reference"):
        matches = screening.Matches(run.frames, params)
        ref = screening.choose_reference(run.frames, matches)
        if ref is None:
            raise _no_usable(run.frames)
    with run.stage("register"):
        used = _register_frames(run, ref, matches)
    with run.stage("warp"):
        warming.result()  # the compiled kernels, loading since prepare()
        store, band_budget = _open_store(run, ref, len(used))
    combination = _warp_and_combine(run, used, ref, store, band_budget)
    with run.stage("catalogue"):
        stars = _catalogue(run, combination, len(used))
    with run.stage("write"):
        exposure = _exposure(used)
        _write(run, used, ref, combination, stars, exposure)
        memory.release(combination.image)  # on disk; its memory serves the next stack
    run.timings["total"] = time.perf_counter() - started
    log.info(
        "stack.done: %d/%d frames stacked, %d stars, %.2f s, storage %s",
        len(used),
        len(paths),
        len(stars),
        run.timings["total"],
        combination.storage,
    )
    return _result(run, used, ref, combination, len(stars), exposure)


def _analyse_frames(run: _Run) -> None:
    """Step 1: read, repair and detect every frame (thread pool); reject odd shapes."""
    n = len(run.frames)
    first_size = run.paths[0].stat().st_size
    keep_images = n * first_size <= MOSAIC_CACHE_FRACTION * run.params.memory_limit_bytes
    with ThreadPoolExecutor(run.params.n_threads) as pool:
        futures = [pool.submit(analysis.analyse, s, run.params, keep_images) for s in run.frames]
        _wait_all(futures, lambda done: run.report("analyse", done, n, "detecting stars"))
    analysis.reject_odd_shapes(run.frames)


def _register_frames(run: _Run, ref: FrameState, matches: screening.Matches) -> list[FrameState]:
    """Step 3: register every usable frame onto the reference and screen it (clouds,
    blur); the accepted frames, the reference among them."""
    screening.register_all(
        run.frames, ref, matches, lambda k, n, name: run.report("register", k, n, name)
    )
    used = [s for s in run.frames if s.record.accepted]
    if not used:
        raise _no_usable(run.frames)
    return used


def _open_store(run: _Run, ref: FrameState, n_used: int) -> tuple[FrameStore, int]:
    """The frame store for the used frames, sized from what the budget leaves for it
    (raw frames still cached, the warping threads' buffers, the output), and the bytes
    of one row band to combine at a time."""
    from crowdsky.stacking import frame_store

    params = run.params
    rows, cols = ref.shape
    n_channels = ref.n_channels
    plane_bytes = rows * cols * n_channels * 4
    cached = sum(s.image.nbytes for s in run.frames if s.image is not None)
    budget = (
        params.memory_limit_bytes
        - FIXED_OVERHEAD_BYTES
        - cached
        - int(WORKING_BYTES_PER_THREAD_FACTOR * plane_bytes * params.n_threads)
        - 2 * plane_bytes  # output image and its temporaries
    )
    budget = max(budget, plane_bytes)
    scratch_dir = params.scratch_dir or run.output.parent
    store = frame_store.FrameStore.create(n_used, rows, cols * n_channels, budget, scratch_dir)
    if store.kind == "disk-float16":
        log.info(
            "stack.tiling: %d frames exceed the in-memory budget of %d bytes; "
            "streaming through a float16 scratch file in %s",
            n_used,
            budget,
            scratch_dir,
        )
    band_budget = (
        BAND_BYTES_RAM16 if store.kind == "ram-float16" else max(budget // 2, BAND_BYTES_MIN)
    )
    return store, band_budget


def _warp_frames(
    run: _Run, used: list[FrameState], ref: FrameState, store: FrameStore
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Step 4: resample every used frame onto the reference grid into the store, on
    the thread pool; each frame's per-channel (background, noise)."""
    warper = alignment.Warper(ref, store, run.params)
    try:
        with ThreadPoolExecutor(run.params.n_threads) as pool:
            futures = [pool.submit(warper.warp, k, s) for k, s in enumerate(used)]
            _wait_all(futures, lambda done: run.report("warp", done, len(used), "aligning"))
        return [f.result() for f in futures]
    finally:  # the pool's threads have ended: the buffers are referenced here only
        warper.release()


def _warp_and_combine(
    run: _Run, used: list[FrameState], ref: FrameState, store: FrameStore, band_budget: int
) -> _Combination:
    """Steps 4 and 5: every used frame warped into the store, then combined; the
    reference's background added back, so the stack is in the reference's ADU."""
    with store:  # closed (scratch file removed) whatever happens
        with run.stage("warp"):
            stats = _warp_frames(run, used, ref, store)
            for s in run.frames:  # drop the raw frames still cached
                s.image = None
        with run.stage("combine"):
            combined = _combine(run, used, ref, store, stats, band_budget)
    with run.stage("combine"):
        image = combined.image.reshape(*ref.shape, ref.n_channels)
        warp.low_pass(image if image.shape[2] == 3 else image[..., 0], run.params.smoothing_px)
        image += stats[used.index(ref)][0].astype(np.float32)  # the reference's background
        _agree_on_coverage(image, combined.coverage)
        for k, s in enumerate(used):
            total = float(combined.covered_per_frame[k])
            s.record.rejected_pixel_fraction = (
                float(combined.rejected_per_frame[k] / total) if total > 0 else None
            )
    return _Combination(image, combined.coverage, store.kind, store.bytes_written)


def _combine(
    run: _Run,
    used: list[FrameState],
    ref: FrameState,
    store: FrameStore,
    stats: list[tuple[np.ndarray, np.ndarray]],
    band_budget: int,
) -> CombineOutput:
    """Step 5: normalise ``(value − background) / transparency``, weigh the frames by
    quality and combine them with rejection; records each frame's weight."""
    from crowdsky.stacking import combine

    params = run.params
    scales = np.array([_scale(s.record, params) for s in used])
    noise = np.array([st[1] for st in stats]) * scales[:, None]  # normalised
    # inverse variance of the *warped, normalised* frame: interpolation smooths
    # frames by different amounts (sub-pixel phase; the reference too, through the
    # CFA warp, unless it is mono or demosaiced first and so copied as it is)
    weights = quality.frame_weights(
        np.sqrt(np.mean(noise**2, axis=1)).tolist(),
        [1.0] * len(used),
        [s.record.fwhm_px or float("nan") for s in used],
        ref.record.fwhm_px or float("nan"),
        params.weighting,
    )
    for s, weight in zip(used, weights, strict=True):
        s.record.weight = float(weight)
    floor = np.sqrt(np.mean(noise**2, axis=0))  # RMS: the scatter a sample shows
    return combine.combine_frames(
        store,
        ref.n_channels,
        weights,
        combine.Normalisation(
            offsets=np.array([st[0] for st in stats]),  # (N, C) ADU
            scales=scales,
            floor=floor,
            noise=noise,
        ),
        combine.Rule(
            method=params.method,
            kappa_low=params.kappa_low,
            kappa_high=params.kappa_high,
            max_iterations=params.max_clip_iterations,
            reject=params.rejection != "none" and params.sigma_clip > 0,
        ),
        band_budget_bytes=band_budget,
        n_threads=params.n_threads,
        progress=lambda d, tot: run.report("combine", d, tot, "rejecting and combining"),
    )


def _scale(rec: FrameRecord, params: StackParams) -> float:
    """The factor that brings a frame's stars to the reference's flux (1 / transparency)."""
    t = rec.transparency
    if params.normalize_scale and t and math.isfinite(t) and t > 0:
        return 1.0 / t
    return 1.0


def _catalogue(run: _Run, combination: _Combination, n_used: int) -> np.ndarray:
    """Step 6: the stars of the stack (summed channels, well-covered pixels)."""
    run.report("catalogue", 0, 1, "detecting stars in the stack")
    stars = detect.catalogue_stack(
        combination.image, combination.coverage, n_used, run.params.stack_star_sigma
    )
    run.report("catalogue", 1, 1, f"{len(stars)} stars")
    return stars


def _exposure(used: list[FrameState]) -> _Exposure:
    """Total exposure, first start, last end and mean pointing of the stacked frames."""
    starts = [s.record.date_obs for s in used if s.record.date_obs is not None]
    ends = [s.date_end for s in used if s.date_end is not None]
    pointings = [s.pointing_deg for s in used if s.pointing_deg is not None]
    decs = [dec for _, dec in pointings]
    return _Exposure(
        total_exptime_s=float(sum(s.record.exptime_s or 0.0 for s in used)),
        date_start=min(starts) if starts else None,
        date_end=max(ends) if ends else None,
        ra_deg=header.circular_mean_deg([ra for ra, _ in pointings]),
        dec_deg=float(np.mean(decs)) if decs else None,
    )


def _write(
    run: _Run,
    used: list[FrameState],
    ref: FrameState,
    combination: _Combination,
    stars: np.ndarray,
    exposure: _Exposure,
) -> None:
    """Step 7: the aggregated header and the multi-extension FITS."""
    from crowdsky import __version__

    run.report("write", 0, 1, str(run.output))
    image = combination.image
    n_channels = image.shape[2]
    facts = header.StackFacts(
        n_input=len(run.frames),
        total_exptime=exposure.total_exptime_s,
        date_start=exposure.date_start,
        date_end=exposure.date_end,
        ra_deg=exposure.ra_deg,
        dec_deg=exposure.dec_deg,
        reference_name=ref.record.filename,
        n_stars=len(stars),
        n_channels=n_channels,
        software_version=__version__,
    )
    hdr = header.build_primary_header([s.header for s in used], facts, run.params.to_dict())
    io.write_stack(
        run.output,
        hdr,
        image if n_channels == 3 else image[..., 0],
        combination.coverage,
        stars,
        result.frames_table([s.record for s in run.frames]),
    )
    run.report("write", 1, 1, str(run.output))


def _result(
    run: _Run,
    used: list[FrameState],
    ref: FrameState,
    combination: _Combination,
    n_stars: int,
    exposure: _Exposure,
) -> StackResult:
    return StackResult(
        output_path=run.output,
        n_frames_input=len(run.frames),
        n_aligned=len(used),
        n_stars_detected=n_stars,
        total_exptime=exposure.total_exptime_s,
        date_obs_start=exposure.date_start,
        date_obs_end=exposure.date_end,
        ra_deg=exposure.ra_deg,
        dec_deg=exposure.dec_deg,
        frames=[s.record for s in run.frames],
        reference_index=ref.record.index,
        timings_s={k: round(v, 4) for k, v in run.timings.items()},
        scratch_bytes=combination.scratch_bytes,
        storage=combination.storage,
        params=run.params.to_dict(),
    )


def _agree_on_coverage(image: np.ndarray, coverage: np.ndarray) -> None:
    """Make NaN pixels and FOOTPRINT == 0 the same set, in place.

    The combination counts the frames covering each pixel in its first colour, but at
    the frame's edges the colours' sites differ (a red site may lie inside a frame
    whose green or blue neighbours do not), so a pixel could be NaN in one colour
    where FOOTPRINT said 1. A pixel counts as covered only when every colour is: a
    colour missing makes the whole pixel NaN and its FOOTPRINT 0.

    The sum of the colours is finite unless one of them is not (or the sum overflows,
    which the exact test of those few pixels catches): 3 ms instead of 23 for
    ``isfinite(image).all(axis=2)`` over a 1080 × 1920 stack, whose short last axis
    numpy reduces slowly.
    """
    total = image[..., 0].copy()
    with np.errstate(over="ignore", invalid="ignore"):
        for c in range(1, image.shape[2]):
            total += image[..., c]
    suspect = np.flatnonzero(~np.isfinite(total))
    pixels = image.reshape(-1, image.shape[2])
    missing = coverage == 0
    missing.reshape(-1)[suspect[~np.isfinite(pixels[suspect]).all(axis=1)]] = True
    index = np.flatnonzero(missing)
    pixels[index] = np.nan
    coverage.reshape(-1)[index] = 0


def _wait_all(futures: list[Future[Any]], on_done: Callable[[int], None]) -> None:
    """Wait for every future, reporting progress from this (the caller's) thread.

    If a frame fails or the progress callback raises (a worker aborting its job), the
    frames not yet started are cancelled instead of being processed for nothing.
    """
    try:
        for done, fut in enumerate(as_completed(futures), start=1):
            fut.result()
            on_done(done)
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise


def _warm_up_kernels() -> None:
    """Load numba and the compiled kernels off the main thread (warping waits for
    them). The output is written by ``fits_writer``: astropy is not needed to stack."""
    from crowdsky.stacking import combine, kernels, mosaic_kernels, resample
    from crowdsky.stacking.params import DEFAULT_INTERPOLATION

    with kernels.skipping_blas_probe():
        mosaic_kernels.warm_up()  # the analysis switches to them as soon as they load
        resample.warm_up(DEFAULT_INTERPOLATION)
        combine.warm_up()


def _no_usable(states: list[FrameState]) -> errors.NoUsableFrames:
    reasons = [f"{s.record.filename}: {s.record.reason or 'not registered'}" for s in states]
    return errors.NoUsableFrames(reasons=reasons)
