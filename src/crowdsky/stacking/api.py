"""``stack_files``: runs the steps, owns the memory budget, reports progress.

Pipeline (every step is a function of a sibling module; this module only sequences
them, keeps the records and does the bookkeeping):

1. **Analyse** each frame (thread pool): read (``io``), suppress hot pixels on the
   mosaic (``debayer``), detect stars on the 2×2 superpixel luminance with an adaptive
   threshold (``detect``). Unreadable frames and frames with too few stars are
   rejected with a reason; frames whose shape or colour layout differs from the
   majority are rejected too.
2. **Reference** by quality with a consensus check (``quality.choose_reference``).
3. **Register** every frame onto the reference and validate the transform
   (``register``); reject cloud-covered (low transparency) and blurred frames.
4. **Warp** (thread pool): each Bayer colour resampled from its own sites straight
   onto the reference grid (``warp``: a separable Lanczos-3 or cubic resampler,
   ``resample``, for rotations up to 10°, OpenCV beyond), NaN outside the frame; mono and RGB frames
   with OpenCV's cubic warp. Per-channel background and noise, normalise
   ``(value − background) / transparency`` and store (``frame_store.FrameStore``:
   RAM float32 / RAM float16 / float16 scratch file, chosen from
   ``memory_limit_bytes``).
5. **Combine** row band by row band: robust median/IQR rejection floored at the
   measured noise, weighted mean (``combine``); the reference's background is added
   back so the stack is in the reference's ADU.
6. **Catalogue** the stack (``detect`` on the summed channels, well-covered pixels).
7. **Write** the MEF with the aggregated header (``header``, ``io``).

Both cores are used: a thread pool for per-frame work (numpy, OpenCV and sep release
the GIL) and numba's parallel combine kernel. Identical input gives identical
output: no random numbers, results gathered in input order.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from crowdsky.stacking import (
    debayer,
    detect,
    errors,
    header,
    io,
    memory,
    quality,
    register,
    result,
    warp,
)
from crowdsky.stacking.params import StackParams
from crowdsky.stacking.result import FrameRecord, RejectReason, StackProgress, StackResult

__all__ = ["prepare", "stack_files"]

log = logging.getLogger(__name__)

DETECTION_LADDER = (5.0, 4.0, 3.5, 3.0, 2.5, 2.0, 1.5)
MOSAIC_CACHE_FRACTION = 0.15
"""Share of the memory budget that may keep raw frames between analysis and warping
(re-reading a frame costs ~3 ms, so beyond this they are simply read again)."""
WORKING_BYTES_PER_THREAD_FACTOR = 4.5
"""Frame-sized float32 RGB buffers alive per resampling thread, at most: the bilinear
path holds uint16 RGB, float RGB, the warped frame and the blended warp's scratch; the
CFA path four one-channel colour planes and a scratch plane."""
BAND_BYTES_RAM16 = 48 * 1024 * 1024
"""Row band converted from in-RAM float16 at a time (conversion is cheap; memory is not)."""
FIXED_OVERHEAD_BYTES = 48 * 1024 * 1024


@dataclass(slots=True)
class _Analysis:
    """Per-frame state between the pipeline steps."""

    record: FrameRecord
    kind: str = ""
    pattern: str | None = None
    shape: tuple[int, int] = (0, 0)
    header: object = None
    image: np.ndarray | None = None
    xy: np.ndarray | None = None
    flux: np.ndarray | None = None
    signature: tuple[object, ...] = ()
    hot_pixels: tuple[np.ndarray, np.ndarray] | None = None


class _Reporter:
    def __init__(self, callback: Callable[[StackProgress], None] | None) -> None:
        self.callback = callback

    def __call__(self, stage: str, done: int, total: int, message: str = "") -> None:
        if self.callback is not None:
            self.callback(StackProgress(stage, done, total, message))


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
        return _run(paths, output, params, _Reporter(progress))
    except errors.StackingError:
        raise
    except MemoryError as exc:
        raise errors.StackingError(
            f"out of memory while stacking {len(paths)} frames; lower memory_limit_bytes"
        ) from exc
    except Exception as exc:
        raise errors.StackingError(f"stacking failed: {type(exc).__name__}: {exc}") from exc


def _run(paths: list[Path], output: Path, params: StackParams, report: _Reporter) -> StackResult:
    return _pipeline(paths, output, params, report, prepare())


_warm_lock = threading.Lock()
_warming: Future[None] | None = None


def prepare() -> Future[None]:
    """Start loading the engine's compiled kernels and FITS writer in the background.

    Once per process: the first stack of a fresh process otherwise spends ~0.4–0.6 s
    on numba and astropy before it can warp (``stack_files`` overlaps that with its
    analysis of the frames; a worker calls this at start-up, so it overlaps claiming
    and downloading the first job too). Returns the future of that work; after a
    failure the next call tries again.
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
    from crowdsky import __version__

    t_start = time.perf_counter()
    # buffers kept from earlier stacks still count in RSS: no more than this stack's budget
    memory.trim(params.memory_limit_bytes)
    timings: dict[str, float] = {}
    n = len(paths)
    states = [_Analysis(FrameRecord(path=p, index=i)) for i, p in enumerate(paths)]
    detect.configure_sep()

    # 1. analyse -------------------------------------------------------------------
    t = time.perf_counter()
    first_size = paths[0].stat().st_size
    keep_images = n * first_size <= MOSAIC_CACHE_FRACTION * params.memory_limit_bytes
    with ThreadPoolExecutor(params.n_threads) as pool:
        futures = [pool.submit(_analyse, s, params, keep_images) for s in states]
        _wait_all(futures, lambda done: report("analyse", done, n, "detecting stars"))
    _reject_odd_shapes(states)
    timings["analyse"] = time.perf_counter() - t

    # 2. reference -------------------------------------------------------------------
    t = time.perf_counter()
    candidates = [s for s in states if s.record.reason is None]
    if not candidates:
        raise _no_usable(states)
    cache: dict[tuple[int, int], register.Registration | None] = {}

    def registration(i: int, j: int) -> register.Registration | None:
        if (i, j) not in cache:
            si, sj = states[i], states[j]
            assert si.xy is not None and sj.xy is not None
            cache[(i, j)] = register.match_stars(
                si.xy,
                sj.xy,
                radius_px=params.match_radius_px,
                model=params.transform_model,
                min_matches=params.min_matched_stars,
            )
        return cache[(i, j)]

    def check(i: int, j: int) -> tuple[RejectReason, str] | None:
        return register.validate(
            registration(i, j),
            n_src=len(states[i].xy),  # type: ignore[arg-type]
            n_ref=len(states[j].xy),  # type: ignore[arg-type]
            min_matched=params.min_matched_stars,
            min_fraction=params.min_matched_fraction,
            max_residual_px=params.max_residual_px,
            max_scale_deviation=params.max_scale_deviation,
            max_rotation_deg=params.max_rotation_deg,
        )

    scores = np.zeros(n)
    # normalise scores against the usable population, not frame by frame
    idx = [s.record.index for s in candidates]
    scores[idx] = quality.frame_scores(
        np.array([states[i].record.n_stars for i in idx]),
        np.array([states[i].record.fwhm_px for i in idx], dtype=float),
        np.array([states[i].record.noise_adu for i in idx], dtype=float),
    )
    ref_index = quality.choose_reference(scores, lambda i, j: check(i, j) is None)
    if ref_index is None:
        raise _no_usable(states)
    ref = states[ref_index]
    ref.record.is_reference = True
    timings["reference"] = time.perf_counter() - t

    # 3. register and screen --------------------------------------------------------
    t = time.perf_counter()
    ref_fwhm = ref.record.fwhm_px or float("nan")
    prior: np.ndarray | None = None
    for k, s in enumerate(candidates, start=1):
        rec = s.record
        if s is ref:
            rec.accepted = True
            rec.transform = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
            rec.n_matched, rec.residual_px = rec.n_stars, 0.0
            rec.scale, rec.rotation_deg, rec.transparency = 1.0, 0.0, 1.0
        else:
            if (rec.index, ref_index) not in cache and s.xy is not None and ref.xy is not None:
                # consecutive frames drift slowly: the last accepted transform is a
                # good first hypothesis (it only orders the search; the fit is the same)
                cache[(rec.index, ref_index)] = register.match_stars(
                    s.xy,
                    ref.xy,
                    radius_px=params.match_radius_px,
                    model=params.transform_model,
                    min_matches=params.min_matched_stars,
                    prior=prior,
                )
            _register_one(
                s,
                ref,
                registration(rec.index, ref_index),
                check(rec.index, ref_index),
                ref_fwhm,
                params,
            )
            if rec.accepted and rec.transform is not None:
                prior = np.asarray(rec.transform)
        report("register", k, len(candidates), rec.filename)
    used = [s for s in states if s.record.accepted]
    timings["register"] = time.perf_counter() - t
    if not used:
        raise _no_usable(states)

    # 4. warp into the store ----------------------------------------------------------
    t = time.perf_counter()
    warming.result()
    from crowdsky.stacking import combine, frame_store

    rows, cols = ref.shape
    n_channels = 1 if ref.kind == "mono" else 3
    plane_bytes = rows * cols * n_channels * 4
    cached = sum(s.image.nbytes for s in states if s.image is not None)
    budget = (
        params.memory_limit_bytes
        - FIXED_OVERHEAD_BYTES
        - cached
        - int(WORKING_BYTES_PER_THREAD_FACTOR * plane_bytes * params.n_threads)
        - 2 * plane_bytes  # output image and its temporaries
    )
    budget = max(budget, plane_bytes)
    scratch_dir = params.scratch_dir or output.parent
    store = frame_store.FrameStore.create(len(used), rows, cols * n_channels, budget, scratch_dir)
    if store.kind == "disk-float16":
        log.info(
            "stack.tiling: %d frames exceed the in-memory budget of %d bytes; "
            "streaming through a float16 scratch file in %s",
            len(used),
            budget,
            scratch_dir,
        )
    try:
        stats = _warp_all(used, ref, store, n_channels, params, report)
        states_cleanup(states)
        timings["warp"] = time.perf_counter() - t

        # 5. combine --------------------------------------------------------------------
        t = time.perf_counter()
        back = np.array([st[0] for st in stats])  # (N, C) ADU
        scales = np.array(
            [
                1.0 / s.record.transparency
                if params.normalize_scale
                and s.record.transparency
                and math.isfinite(s.record.transparency)
                and s.record.transparency > 0
                else 1.0
                for s in used
            ]
        )
        noise = np.array([st[1] for st in stats]) * scales[:, None]  # normalised
        # inverse variance of the *warped, normalised* frame: interpolation smooths
        # frames by different amounts (sub-pixel phase; the reference too, through the
        # CFA warp, unless it is mono or demosaiced first and so copied as it is)
        weights = quality.frame_weights(
            np.sqrt(np.mean(noise**2, axis=1)).tolist(),
            [1.0] * len(used),
            [s.record.fwhm_px or float("nan") for s in used],
            ref_fwhm,
            params.weighting,
        )
        floor = np.sqrt(np.mean(noise**2, axis=0))  # RMS: the scatter a sample shows
        band_budget = (
            BAND_BYTES_RAM16 if store.kind == "ram-float16" else max(budget // 2, 16 * 1024 * 1024)
        )
        combined = combine.combine_frames(
            store,
            n_channels,
            weights,
            combine.Normalisation(offsets=back, scales=scales, floor=floor, noise=noise),
            combine.Rule(
                method=params.method,
                kappa_low=params.kappa_low,
                kappa_high=params.kappa_high,
                max_iterations=params.max_clip_iterations,
                reject=params.rejection != "none" and params.sigma_clip > 0,
            ),
            band_budget_bytes=band_budget,
            n_threads=params.n_threads,
            progress=lambda d, tot: report("combine", d, tot, "rejecting and combining"),
        )
        scratch_bytes = store.bytes_written
        storage = store.kind
    finally:
        store.close()
    ref_back = back[used.index(ref)]
    image = combined.image.reshape(rows, cols, n_channels)
    warp.low_pass(image if n_channels == 3 else image[..., 0], params.smoothing_px)
    image += ref_back.astype(np.float32)
    _agree_on_coverage(image, combined.coverage)
    for k, s in enumerate(used):
        s.record.weight = float(weights[k])
        total = float(combined.covered_per_frame[k])
        s.record.rejected_pixel_fraction = (
            float(combined.rejected_per_frame[k] / total) if total > 0 else None
        )
    timings["combine"] = time.perf_counter() - t

    # 6. catalogue ---------------------------------------------------------------------
    t = time.perf_counter()
    report("catalogue", 0, 1, "detecting stars in the stack")
    stars = detect.catalogue_stack(image, combined.coverage, len(used), params.stack_star_sigma)
    report("catalogue", 1, 1, f"{len(stars)} stars")
    timings["catalogue"] = time.perf_counter() - t

    # 7. header and file ------------------------------------------------------------------
    t = time.perf_counter()
    report("write", 0, 1, str(output))
    exptime = float(sum(s.record.exptime_s or 0.0 for s in used))
    starts = [s.record.date_obs for s in used if s.record.date_obs is not None]
    ends = [
        s.record.date_obs.__add__(_seconds(s.record.exptime_s))
        for s in used
        if s.record.date_obs is not None
    ]
    pointings = [io.RawFrame(np.zeros((1, 1)), "", None, s.header).pointing_deg for s in used]
    ras = [p[0] for p in pointings if p is not None]
    decs = [p[1] for p in pointings if p is not None]
    ra = header.circular_mean_deg(ras)
    dec = float(np.mean(decs)) if decs else None
    hdr = header.build_primary_header(
        [s.header for s in used],
        n_input=n,
        total_exptime=exptime,
        date_start=min(starts) if starts else None,
        date_end=max(ends) if ends else None,
        ra_deg=ra,
        dec_deg=dec,
        reference_name=ref.record.filename,
        params=params.to_dict(),
        n_stars=len(stars),
        software_version=__version__,
        n_channels=n_channels,
    )
    io.write_stack(
        output,
        hdr,
        image if n_channels == 3 else image[..., 0],
        combined.coverage,
        stars,
        result.frames_table([s.record for s in states]),
    )
    report("write", 1, 1, str(output))
    del image
    memory.release(combined.image)  # the stack is on disk; its memory serves the next one
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_start
    log.info(
        "stack.done: %d/%d frames stacked, %d stars, %.2f s, storage %s",
        len(used),
        n,
        len(stars),
        timings["total"],
        storage,
    )
    return StackResult(
        output_path=output,
        n_frames_input=n,
        n_aligned=len(used),
        n_stars_detected=len(stars),
        total_exptime=exptime,
        date_obs_start=min(starts) if starts else None,
        date_obs_end=max(ends) if ends else None,
        ra_deg=ra,
        dec_deg=dec,
        frames=[s.record for s in states],
        reference_index=ref_index,
        timings_s={k: round(v, 4) for k, v in timings.items()},
        scratch_bytes=scratch_bytes,
        storage=storage,
        params=params.to_dict(),
    )


def _agree_on_coverage(image: np.ndarray, coverage: np.ndarray) -> None:
    """Make NaN pixels and FOOTPRINT == 0 the same set, in place.

    The combination counts the frames covering each pixel in its first colour, but at
    the frame's edges the colours' sites differ (a red site may lie inside a frame
    whose green or blue neighbours do not), so a pixel could be NaN in one colour
    where FOOTPRINT said 1. A pixel counts as covered only when every colour is: a
    colour missing makes the whole pixel NaN and its FOOTPRINT 0.
    """
    missing = ~np.isfinite(image).all(axis=2)
    missing |= coverage == 0
    image[missing] = np.nan
    coverage[missing] = 0


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
    """Load numba and the compiled kernels, then astropy's FITS writer, off the main
    thread. The kernels come first: warping waits for them, while astropy is needed
    only to write the result (an import already under way just completes then).

    ``astropy.table`` too: ``fits.BinTableHDU(data)`` imports it on first use (to
    check whether ``data`` is a ``Table``), with ``astropy.time`` and ``erfa``, which
    made writing the first stack of a process 0.3–1.0 s slower than the next.
    """
    from crowdsky.stacking import combine, kernels, resample
    from crowdsky.stacking.params import DEFAULT_INTERPOLATION

    with kernels.skipping_blas_probe():
        resample.warm_up(DEFAULT_INTERPOLATION)
        combine.warm_up()
    import astropy.io.fits
    import astropy.table  # noqa: F401


def _seconds(value: float | None) -> timedelta:
    return timedelta(seconds=value or 0.0)


def states_cleanup(states: list[_Analysis]) -> None:
    """Drop cached raw images once every frame is warped."""
    for s in states:
        s.image = None


def _load_mosaic(
    path: Path, params: StackParams
) -> tuple[io.RawFrame, tuple[np.ndarray, np.ndarray] | None]:
    """Read a frame and repair its hot pixels; also return the repairs (None when the
    frame has no raw mosaic to repair)."""
    frame = io.read_frame(path)
    if frame.kind == "bayer" or (frame.kind == "mono" and frame.data.dtype == np.uint16):
        fixes = debayer.find_hot_pixels(frame.data, params.hot_pixel_sigma)
        frame.data.reshape(-1)[fixes[0]] = fixes[1]
        return frame, fixes
    return frame, None


def _reload_mosaic(state: _Analysis) -> np.ndarray:
    """Read a frame again for warping, with the hot-pixel repairs found in its
    analysis (finding them again cost more than the read)."""
    frame = io.read_frame(state.record.path)
    if frame.shape != state.shape or frame.kind != state.kind:
        raise errors.StackingError(
            f"{state.record.filename} changed on disk while it was being stacked"
        )
    if state.hot_pixels is not None:
        frame.data.reshape(-1)[state.hot_pixels[0]] = state.hot_pixels[1]
    return frame.data


def _analyse(state: _Analysis, params: StackParams, keep_image: bool) -> None:
    rec = state.record
    try:
        frame, state.hot_pixels = _load_mosaic(rec.path, params)
    except errors.InvalidInput as exc:
        rec.reject(RejectReason.UNREADABLE, f"unreadable: {exc}")
        return
    state.kind, state.pattern, state.shape, state.header = (
        frame.kind,
        frame.bayer_pattern,
        frame.shape,
        frame.header,
    )
    state.signature = (frame.shape, frame.kind == "mono")
    rec.date_obs, rec.exptime_s = frame.date_obs, frame.exptime_s
    lum_full = detect.channel_sum(frame.data) if frame.kind == "rgb" else frame.data
    lum = debayer.superpixel_luminance(lum_full)
    try:
        found = detect.find_stars(
            lum,
            sigmas=tuple(
                s for s in DETECTION_LADDER if params.min_detect_sigma <= s <= params.detect_sigma
            )
            or (params.detect_sigma,),
            target_stars=params.target_stars,
            max_stars=params.max_stars,
            binned_background=True,  # superpixels of a raw frame: independent noise
        )
    except errors.StackingError as exc:
        rec.reject(RejectReason.TOO_FEW_STARS, f"star detection failed: {exc}")
        return
    stars = found.stars
    rec.n_stars = int(stars.size)
    rec.background_adu, rec.noise_adu = found.background, found.noise
    rec.fwhm_px = 2.0 * found.median_fwhm if math.isfinite(found.median_fwhm) else None
    # superpixel (i, j) is centred on native (2i + 0.5, 2j + 0.5)
    state.xy = np.column_stack([2.0 * stars["x"] + 0.5, 2.0 * stars["y"] + 0.5])
    state.flux = stars["flux"].astype(np.float64)
    if rec.n_stars < params.min_stars:
        rec.reject(
            RejectReason.TOO_FEW_STARS,
            f"only {rec.n_stars} stars detected down to {found.threshold_sigma:g} sigma "
            f"(need {params.min_stars}): clouds, fog, hot pixels only, or no sky",
        )
        return
    if keep_image:
        state.image = frame.data


def _reject_odd_shapes(states: list[_Analysis]) -> None:
    sigs = Counter(s.signature for s in states if s.record.reason is None)
    if len(sigs) <= 1:
        return
    majority, _ = sigs.most_common(1)[0]
    for s in states:
        if s.record.reason is None and s.signature != majority:
            s.record.reject(
                RejectReason.SHAPE_MISMATCH,
                f"image {s.shape} ({s.kind}) differs from the majority {majority[0]}",
            )
            s.image = None


def _register_one(
    s: _Analysis,
    ref: _Analysis,
    reg: register.Registration | None,
    problem: tuple[RejectReason, str] | None,
    ref_fwhm: float,
    params: StackParams,
) -> None:
    rec = s.record
    if reg is not None:
        rec.n_matched = reg.n_matched
        rec.residual_px = reg.residual_px
        rec.scale, rec.rotation_deg = reg.scale, reg.rotation_deg
    if problem is not None:
        rec.reject(*problem)
        s.image = None
        return
    assert reg is not None and s.flux is not None and ref.flux is not None
    rec.transparency = quality.transparency(s.flux[reg.src_index], ref.flux[reg.ref_index])
    if math.isfinite(rec.transparency) and rec.transparency < params.min_transparency:
        rec.reject(
            RejectReason.CLOUDS,
            f"transparency {rec.transparency:.2f} of the reference's below "
            f"{params.min_transparency:g} (clouds or haze)",
        )
        s.image = None
        return
    if rec.fwhm_px and math.isfinite(ref_fwhm) and rec.fwhm_px > params.max_fwhm_ratio * ref_fwhm:
        rec.reject(
            RejectReason.BLURRED,
            f"FWHM {rec.fwhm_px:.2f} px is more than {params.max_fwhm_ratio:g}x the "
            f"reference's {ref_fwhm:.2f} px (trailed or out of focus)",
        )
        s.image = None
        return
    rec.accepted = True
    rec.transform = reg.matrix.round(8).tolist()


def _warp_all(
    used: list[_Analysis],
    ref: _Analysis,
    store: object,
    n_channels: int,
    params: StackParams,
    report: _Reporter,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Resample every used frame onto the reference grid into the store; return
    per-channel stats.

    Bayer frames go straight from the mosaic to RGB on the reference grid
    (``warp.warp_bayer``, each colour interpolated once from its own sites) unless
    ``params.demosaic == 'bilinear'``. Each thread reuses its own buffers (a fresh
    25 MB array per frame costs more in page faults than the warp itself), and with
    in-RAM float32 storage the result is written straight into the frame's slot.
    """
    rows, cols = ref.shape
    local = threading.local()
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

    allocated: list[np.ndarray] = []

    def buffer(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """This thread's reusable buffer ``name``, allocated when first needed."""
        found: np.ndarray | None = getattr(local, name, None)
        if found is None:
            found = memory.empty(shape, dtype)
            setattr(local, name, found)
            allocated.append(found)
        return found

    def work(k: int) -> tuple[np.ndarray, np.ndarray]:
        s = used[k]
        data = s.image
        if data is None:
            data = _reload_mosaic(s)
        s.image = None
        target = store.target(k)  # type: ignore[attr-defined]
        if target is None:
            target = buffer("out", (rows, cols * n_channels), np.float32)
        dst = target.reshape(rows, cols, n_channels)
        matrix = identity if s is ref else np.asarray(s.record.transform, dtype=np.float64)
        if s.kind == "bayer" and params.demosaic == "cfa":
            assert s.pattern is not None
            planes = buffer("planes", (warp.BAYER_WORK_PLANES, rows, cols), np.float32)
            warp.warp_bayer(
                data, s.pattern, matrix, ref.shape, params.interpolation, dst=dst, work=planes
            )
        else:
            rgb32 = buffer("rgb32", (rows, cols, n_channels), np.float32)
            if s.kind == "bayer":
                assert s.pattern is not None
                rgb16 = buffer("rgb16", (rows, cols, 3), np.uint16)
                debayer.debayer(data, s.pattern, dst=rgb16)
                np.copyto(rgb32, rgb16, casting="unsafe")
            else:
                np.copyto(rgb32, data.reshape(rows, cols, n_channels), casting="unsafe")
            if s is ref:
                np.copyto(dst, rgb32)
            else:
                src = rgb32 if n_channels == 3 else rgb32[..., 0]
                scratch = (  # only the blended kernel needs a second plane
                    buffer("scratch", dst.shape, np.float32)
                    if params.interpolation == warp.BLENDED
                    else None
                )
                warp.warp_image(
                    src, matrix, ref.shape, params.interpolation, dst=dst, scratch=scratch
                )
        del data
        back, noise = quality.channel_statistics(dst)
        store.put(k, target)  # type: ignore[attr-defined]
        return back, noise

    try:
        with ThreadPoolExecutor(params.n_threads) as pool:
            futures = [pool.submit(work, k) for k in range(len(used))]
            _wait_all(futures, lambda done: report("warp", done, len(used), "aligning"))
        return [f.result() for f in futures]
    finally:  # the pool's threads have ended: the buffers are referenced here only
        for array in allocated:
            memory.release(array)
        allocated.clear()


def _no_usable(states: list[_Analysis]) -> errors.NoUsableFrames:
    reasons = [f"{s.record.filename}: {s.record.reason or 'not registered'}" for s in states]
    return errors.NoUsableFrames(reasons=reasons)
