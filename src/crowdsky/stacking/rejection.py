"""Per-pixel robust rejection and weighted combination of a slice of rows: the numba kernel.

:func:`combine_rows` clips each pixel's samples around their median with a scale from
the interquartile range floored at the frames' measured noise (a trail or two
coincident outliers cannot inflate it the way they inflate a mean and standard
deviation; a chance-small spread at small N cannot over-reject), then combines the
survivors. Its inputs are grouped in the named tuples below, which numba takes as it
takes separate arguments. ``combine.combine_frames`` prepares them and runs the kernel.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from crowdsky.stacking.kernels import compiled, inlined

__all__ = [
    "COLUMN_CHUNK",
    "SORT_NETWORK_MAX",
    "Estimator",
    "FrameTerms",
    "Mode",
    "Totals",
    "combine_rows",
    "sorting_network",
]

SORT_NETWORK_MAX = 16
"""Up to this many frames every sample takes part in the centre/scale estimate; beyond
it an evenly spaced subset of this size does (the clip is still applied to all)."""
COLUMN_CHUNK = 768
"""Columns processed together (a multiple of 3 so the channel pattern repeats per chunk):
the sorted block (≤ 16 × 768 float32) stays in L2."""
_SENTINEL = np.float32(np.finfo(np.float32).max)


# numba takes these tuples of arrays and scalars as it takes separate arguments (each
# field is a value of the compiled function); the per-column arrays repeat the channel
# pattern over one COLUMN_CHUNK, which starts on a pixel boundary.


class FrameTerms(NamedTuple):
    """Per-frame inputs of the kernel, C-contiguous."""

    offsets: np.ndarray  # (N, COLUMN_CHUNK) float32 background per column
    scales: np.ndarray  # (N,) float32 normalisation factors
    gains: np.ndarray  # (N, COLUMN_CHUNK) float32 1 / relative noise per column (1: none)
    weights: np.ndarray  # (N,) float64


class Estimator(NamedTuple):
    """The samples that estimate each pixel's centre and scale, and the scale's floor."""

    subset: np.ndarray  # (S,) int64 frames used for the centre/scale estimate
    comps: np.ndarray  # (K, 2) sorting network for S inputs
    floor: np.ndarray  # (n_channels,) float64
    floor_pattern: np.ndarray  # (COLUMN_CHUNK,) float64 floor per column


class Mode(NamedTuple):
    """The rule as the kernel reads it."""

    kappa_low: float
    kappa_high: float
    max_iterations: int
    use_median: bool
    reject: bool
    whiten: bool  # per-frame acceptance bands (False: every gain is 1)


class Totals(NamedTuple):
    """The kernel's outputs for its rows."""

    out: np.ndarray  # (R, C) float32
    coverage: np.ndarray  # (R, C // n_channels) uint16
    rejected: np.ndarray  # (R, N) int64
    covered: np.ndarray  # (R, N) int64


class _RowWork(NamedTuple):
    """Per-column scratch of one row chunk, COLUMN_CHUNK long."""

    v: np.ndarray  # (S, COLUMN_CHUNK) float32 estimation samples, sorted per column
    centre: np.ndarray  # float32 centre each sample is measured from (0: none)
    low: np.ndarray  # float32 lowest accepted distance from the centre
    high: np.ndarray  # float32 highest accepted distance from the centre
    acc: np.ndarray  # float64 weighted sum of values, or the median
    spread: np.ndarray  # float64 robust σ
    wsum: np.ndarray  # float64 sum of the accepted weights
    cov: np.ndarray  # int64 covering frames
    todo: np.ndarray  # bool: not settled by the fast path


def sorting_network(n: int) -> np.ndarray:
    """Comparators (a, b), a < b, of Batcher's odd-even merge sort for ``n`` inputs.

    A fixed sequence of compare-exchange steps sorts any input, so the same step can
    be applied to a whole row of pixels at once (SIMD min/max, no branches), where a
    per-pixel insertion sort branches unpredictably.
    """
    comps: list[tuple[int, int]] = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        comps.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return np.array(comps, dtype=np.int64).reshape(-1, 2)


@compiled()
def combine_rows(  # pragma: no cover - compiled
    band: np.ndarray,  # (N, rows, C) float32, C-contiguous, NaN = not covered
    row_begin: int,  # rows row_begin:row_end of band are combined into totals' rows 0...
    row_end: int,
    frames: FrameTerms,
    estimator: Estimator,
    mode: Mode,
    totals: Totals,
) -> None:
    """Reject and combine rows ``row_begin:row_end`` of ``band``, 768 columns at a time.

    1. The estimation samples of every column, normalised (``(value − background) ·
       scale``), are sorted along the frame axis by a sorting network applied to
       whole rows at once.
    2. Per pixel, iterative κσ clipping around the median, σ = max(IQR / 1.349,
       floor). Most pixels are settled by a vectorised first pass; only pixels with a
       sample outside median ± κσ iterate. With two samples, a pair that disagrees by
       more than κ√2·floor keeps the lower value (trails and cosmics are positive).
    3. Every frame is tested against the accepted range: without per-frame noise the
       range of the kept sorted samples (median ± κσ when a subset estimated it);
       with it ("whitened") frame i is kept when its distance from the median is
       within −κ_low·σ·r_i … κ_high·σ·r_i (a gain of 1 / r_i per column). Scaling the
       samples by 1 / r_i instead would scale the signal too, spread the frames apart
       on stars and nebulae and let trails through. The survivors are combined by
       weighted mean (or their median); rejections and coverage are counted per frame.

    The column loops vectorise only because the kernel receives whole C-contiguous
    arrays (a band sliced across frames compiles for arbitrary strides), rows are
    sliced to start at the chunk, and the mode tests sit outside the loops.
    """
    n_cols = band.shape[2]
    n_sub = estimator.subset.shape[0]
    n_ch = estimator.floor.shape[0]
    everyone = n_sub == band.shape[0]
    for r in range(row_end - row_begin):
        work = _RowWork(
            np.empty((n_sub, COLUMN_CHUNK), dtype=np.float32),
            np.empty(COLUMN_CHUNK, dtype=np.float32),
            np.empty(COLUMN_CHUNK, dtype=np.float32),
            np.empty(COLUMN_CHUNK, dtype=np.float32),
            np.empty(COLUMN_CHUNK, dtype=np.float64),
            np.empty(COLUMN_CHUNK, dtype=np.float64),
            np.empty(COLUMN_CHUNK, dtype=np.float64),
            np.empty(COLUMN_CHUNK, dtype=np.int64),
            np.empty(COLUMN_CHUNK, dtype=np.bool_),
        )
        row = row_begin + r
        for c0 in range(0, n_cols, COLUMN_CHUNK):
            w = min(COLUMN_CHUNK, n_cols - c0)
            _sort_samples(band, row, c0, w, frames, estimator, work.v)
            _settle_most(work, w, estimator.floor_pattern, mode, everyone)
            _clip_the_rest(work, w, c0, estimator.floor, mode, everyone)
            _reset_sums(work, w, mode.use_median)
            for i in range(band.shape[0]):
                src = band[i, row, c0 : c0 + w]
                # the constant flag is folded: a test inside the loop would keep it scalar
                if mode.use_median:
                    n_rej, n_cov = _accept(src, frames, i, work, w, False)
                else:
                    n_rej, n_cov = _accept(src, frames, i, work, w, True)
                totals.rejected[r, i] += n_rej
                totals.covered[r, i] += n_cov
            _write_chunk(work, w, c0, n_ch, mode.use_median, totals, r)


@compiled(fastmath=True)
def _network_sort(v: np.ndarray, comps: np.ndarray, width: int) -> None:  # pragma: no cover
    for k in range(comps.shape[0]):
        ra = v[comps[k, 0]]
        rb = v[comps[k, 1]]
        for c in range(width):
            x = ra[c]
            y = rb[c]
            ra[c] = min(x, y)
            rb[c] = max(x, y)


@compiled()
def _order_stat(v: np.ndarray, lo: int, hi: int, q: float, c: int) -> float:  # pragma: no cover
    """Linearly interpolated quantile ``q`` of the sorted column ``v[lo:hi, c]``."""
    pos = lo + q * (hi - lo - 1)
    i = int(pos)
    f = pos - i
    if i + 1 < hi:
        return float((1.0 - f) * v[i, c] + f * v[i + 1, c])
    return float(v[i, c])


@inlined
def _sort_samples(  # pragma: no cover - compiled
    band: np.ndarray,
    row: int,
    c0: int,
    w: int,
    frames: FrameTerms,
    estimator: Estimator,
    v: np.ndarray,
) -> None:
    """Step 1: the estimation samples of columns ``c0:c0 + w`` of ``row``, normalised
    and sorted per column into ``v``; uncovered (NaN) as +max, so they sort last."""
    subset = estimator.subset
    for j in range(subset.shape[0]):
        src = band[subset[j], row, c0 : c0 + w]
        off = frames.offsets[subset[j]]
        sc = frames.scales[subset[j]]
        dst = v[j]
        for c in range(w):
            y = (src[c] - off[c]) * sc
            dst[c] = y if y == y else _SENTINEL
    _network_sort(v, estimator.comps, w)


@inlined
def _settle_most(  # pragma: no cover - compiled
    work: _RowWork, w: int, fl_pattern: np.ndarray, mode: Mode, everyone: bool
) -> None:
    """Step 2a, vectorised over columns: fully covered pixels whose sorted extremes
    already lie inside median ± κσ need no iteration (most do); the others are marked
    ``todo``. Whitened, each frame is then tested against its own band in step 3."""
    v, todo, centre, low, high = work.v, work.todo, work.centre, work.low, work.high
    spread, acc = work.spread, work.acc
    n_sub = v.shape[0]
    if n_sub < 3:
        for c in range(w):
            todo[c] = True
        return
    kappa_low, kappa_high = mode.kappa_low, mode.kappa_high
    q_lo = 0.25 * (n_sub - 1)
    q_hi = 0.75 * (n_sub - 1)
    i_lo = int(q_lo)
    i_hi = int(q_hi)
    f_lo = q_lo - i_lo
    f_hi = q_hi - i_hi
    mid_a = (n_sub - 1) // 2
    mid_b = n_sub // 2
    va, vb = v[mid_a], v[mid_b]
    vlo, vlo1 = v[i_lo], v[min(i_lo + 1, n_sub - 1)]
    vhi, vhi1 = v[i_hi], v[min(i_hi + 1, n_sub - 1)]
    vmin, vmax = v[0], v[n_sub - 1]
    # one loop per mode: tests inside it would keep it from vectorising
    for c in range(w):
        m = 0.5 * (va[c] + vb[c])
        q1 = (1.0 - f_lo) * vlo[c] + f_lo * vlo1[c]
        q3 = (1.0 - f_hi) * vhi[c] + f_hi * vhi1[c]
        sig = max((q3 - q1) / 1.349, fl_pattern[c])
        lcut = m - kappa_low * sig
        hcut = m + kappa_high * sig
        todo[c] = (vmax[c] >= _SENTINEL) | (vmin[c] < lcut) | (vmax[c] > hcut)
        centre[c] = m
        spread[c] = sig
        low[c] = lcut
        high[c] = hcut
        acc[c] = m  # the median, for use_median (reset in step 3 otherwise)
    if not mode.reject:
        for c in range(w):
            centre[c] = 0.0
            low[c] = -np.inf
            high[c] = np.inf
    elif mode.whiten:
        for c in range(w):
            low[c] = -kappa_low * spread[c]
            high[c] = kappa_high * spread[c]
    elif everyone:
        for c in range(w):
            centre[c] = 0.0
            low[c] = vmin[c]
            high[c] = vmax[c]
    else:
        for c in range(w):
            centre[c] = 0.0


@inlined
def _clip_the_rest(  # pragma: no cover - compiled
    work: _RowWork, w: int, c0: int, floor: np.ndarray, mode: Mode, everyone: bool
) -> None:
    """Step 2b, per pixel not settled by the fast path: iterative median / IQR
    clipping on the sorted samples; sets the pixel's centre and accepted range."""
    v, todo, centre, low, high, acc = work.v, work.todo, work.centre, work.low, work.high, work.acc
    n_ch = floor.shape[0]
    kappa_low, kappa_high = mode.kappa_low, mode.kappa_high
    reject, whiten = mode.reject, mode.whiten
    for c in range(w):
        if not todo[c]:
            continue
        n = _n_covered(v, c)
        centre[c] = 0.0
        if n == 0:
            low[c] = np.inf  # nothing covers: everything is rejected below
            high[c] = -np.inf
            continue
        lo = 0
        hi = n
        fl = floor[(c0 + c) % n_ch]
        m = _order_stat(v, lo, hi, 0.5, c)
        sig = fl
        if reject and n == 2:
            # two samples that disagree by more than κ√2·floor: keep the lower (trails
            # and cosmics are positive)
            if v[1, c] - v[0, c] > max(kappa_low, kappa_high) * 1.4142135 * fl:
                hi = 1
                m = v[0, c]
        elif reject and n >= 3:
            lo, hi, m, sig = _clip_column(v, c, n, fl, mode)
        if not reject or (whiten and everyone and n <= 2 and hi == n):
            low[c] = -np.inf  # (whitened: one sample, or two that agree)
            high[c] = np.inf
        elif whiten and everyone and n == 2:
            centre[c] = v[0, c]  # the lower of two that disagree, alone
            low[c] = 0.0
            high[c] = 0.0
        elif whiten:
            centre[c] = m
            low[c] = -kappa_low * sig
            high[c] = kappa_high * sig
        elif everyone:
            low[c] = v[lo, c]
            high[c] = v[hi - 1, c]
        else:
            low[c] = m - kappa_low * sig
            high[c] = m + kappa_high * sig
        if mode.use_median:
            acc[c] = _order_stat(v, lo, hi, 0.5, c)


@inlined
def _n_covered(v: np.ndarray, c: int) -> int:  # pragma: no cover - compiled
    """Covered samples of column ``c``: the uncovered sorted last, as +max."""
    n = 0
    while n < v.shape[0] and v[n, c] < _SENTINEL:
        n += 1
    return n


@inlined
def _clip_column(  # pragma: no cover - compiled
    v: np.ndarray, c: int, n: int, fl: float, mode: Mode
) -> tuple[int, int, float, float]:
    """Iterative median / IQR clipping of the ``n`` ≥ 3 covered sorted samples of
    column ``c``: the kept rows [lo, hi), their median and σ (at least ``fl``)."""
    kappa_low, kappa_high = mode.kappa_low, mode.kappa_high
    lo = 0
    hi = n
    m = _order_stat(v, lo, hi, 0.5, c)
    sig = fl
    for _ in range(mode.max_iterations):
        m = _order_stat(v, lo, hi, 0.5, c)
        iqr = _order_stat(v, lo, hi, 0.75, c) - _order_stat(v, lo, hi, 0.25, c)
        sig = max(iqr / 1.349, fl)
        lcut = m - kappa_low * sig
        hcut = m + kappa_high * sig
        new_lo = lo
        while new_lo < hi and v[new_lo, c] < lcut:
            new_lo += 1
        new_hi = hi
        while new_hi > new_lo and v[new_hi - 1, c] > hcut:
            new_hi -= 1
        if new_hi - new_lo < 1 or (new_lo == lo and new_hi == hi):
            break
        lo = new_lo
        hi = new_hi
    return lo, hi, m, sig


@inlined
def _reset_sums(work: _RowWork, w: int, use_median: bool) -> None:  # pragma: no cover
    """Step 3 starts from no weight and no coverage (the median stays in ``acc``)."""
    acc, wsum, cov = work.acc, work.wsum, work.cov
    for c in range(w):
        wsum[c] = 0.0
        cov[c] = 0
        if not use_median:
            acc[c] = 0.0


@inlined
def _accept(  # pragma: no cover - compiled
    src: np.ndarray, frames: FrameTerms, i: int, work: _RowWork, w: int, sum_values: bool
) -> tuple[int, int]:
    """Step 3 for frame ``i``'s row chunk ``src``: add its weight (and with
    ``sum_values`` its weighted values) where it lies in the accepted range; its
    (rejected, covered) counts. Unwhitened, centre is 0 and gain 1, so the distance
    is the value itself."""
    off, sc, gain, wi = frames.offsets[i], frames.scales[i], frames.gains[i], frames.weights[i]
    # work's arrays are read in the loop, not bound to names first: each binding costs a
    # reference count per frame and chunk (about 8 % of the kernel), the loop is the same
    n_rej = 0
    n_cov = 0
    for c in range(w):
        x = (src[c] - off[c]) * sc
        d = (x - work.centre[c]) * gain[c]
        finite = x == x
        ok = finite & (d >= work.low[c]) & (d <= work.high[c])
        work.cov[c] += finite
        n_cov += finite
        n_rej += finite & (not ok)
        work.wsum[c] += wi if ok else 0.0
        if sum_values:
            work.acc[c] += wi * x if ok else 0.0
    return n_rej, n_cov


@inlined
def _write_chunk(  # pragma: no cover - compiled
    work: _RowWork, w: int, c0: int, n_ch: int, use_median: bool, totals: Totals, r: int
) -> None:
    """Step 4: the combined values and the coverage of the chunk into row ``r``."""
    acc, wsum, cov = work.acc, work.wsum, work.cov
    out, coverage = totals.out, totals.coverage
    for c in range(w):
        if cov[c] == 0:
            out[r, c0 + c] = np.nan
        elif use_median:
            out[r, c0 + c] = acc[c]
        else:
            out[r, c0 + c] = acc[c] / wsum[c] if wsum[c] > 0 else np.nan
        if (c0 + c) % n_ch == 0:
            coverage[r, (c0 + c) // n_ch] = min(cov[c], 65535)
