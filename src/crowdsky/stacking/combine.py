"""Tile-wise weighted combination with robust pixel rejection, within a memory budget.

Storage (:class:`FrameStore`)
    Aligned, normalised frames are kept as (N, H, W·3) planes: in RAM as float32 when
    they fit the budget, in RAM as float16 when that fits, otherwise in a float16
    scratch file written with ``pwrite`` and read back in row bands with ``preadv``.
    Plain file I/O (not ``np.memmap``) keeps the page cache out of the process's RSS,
    so peak memory does not grow with N. float16 is exact enough here: the frames are
    background-subtracted (sky ≈ 0 ± noise, resolution < 0.1 ADU there), and at star
    peaks its 0.05 % step is far below photon noise. Uncovered pixels are NaN. The
    conversions run in numba (:mod:`crowdsky.stacking.half`, ~7× faster than numpy's,
    bit-identical).

Rejection (``_combine_kernel``, a numba kernel run by a thread pool over row slices)
    Per row and block of 768 columns, the samples of every frame are normalised
    (``(value − background) / transparency``) and sorted along the frame axis by a
    sorting network applied to whole rows at once (SIMD min/max, no branches;
    per-pixel insertion sort was 10× slower). Then, per pixel, iterative κσ clipping
    around the median with σ = max(IQR / 1.349, floor): the floor is the frames'
    measured background noise (RMS), so at small N a chance-small IQR cannot
    over-reject, and a satellite trail or two coincident outliers cannot inflate
    median or IQR the way they inflate a mean/std clip (the original engine could not
    reject anything at N ≤ 10). Most pixels are settled by a vectorised first pass;
    only pixels with a sample outside the range iterate. Without per-frame noise the
    kept set is a contiguous range of the sorted samples, and every frame's value is
    tested against that range. With each frame's noise given (relative to the floor,
    r = noise / floor), a sample is judged by its own frame's noise: frame i is kept
    when median − κ_low·σ·r_i ≤ value ≤ median + κ_high·σ·r_i, median and σ still
    estimated from the samples themselves, as without noise. (Scaling the samples by
    1 / r_i instead would scale the signal too: on a star or nebula the frames'
    values would spread apart in proportion to the signal, inflate σ and let trails
    through.) So a frame that interpolation smoothed less than the others is not
    clipped more often than the rest: the reference where it is copied without
    resampling (mono frames, ``demosaic='bilinear'``; with the default
    ``demosaic='cfa'`` it goes through the same CFA warp as the others, with an
    identity matrix, which interpolates most of each colour's pixels), or frames
    whose sub-pixel offsets smooth them less. The survivors' normalised values are
    combined by weighted mean (or median, which keeps one band for all frames). With
    two samples, a pair that disagrees by more than κ√2·floor keeps the lower value
    (trails and cosmics are positive). Beyond 16 frames an evenly spaced subset of 16
    estimates median and σ and the cut is applied to all. Rejections and coverage are
    counted per frame. No temporary cube is allocated. The per-column loops are
    written so that they vectorise: the kernel receives whole C-contiguous arrays
    (a band sliced across frames would be compiled for arbitrary strides), rows are
    sliced to start at the chunk, and mode tests sit outside the loops (with these
    alone the kernel went from 3.0 to 1.1 ns per sample, bit-identical results).
    The kernel is compiled once and cached by numba (``cache=True``), or compiled in
    memory where no cache folder is writable (``stacking.kernels``).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crowdsky.stacking import errors, half, memory
from crowdsky.stacking.kernels import compiled, inlined

__all__ = ["CombineOutput", "FrameStore", "combine_frames"]

log = logging.getLogger(__name__)

BAND_BYTES_MAX = 192 * 1024 * 1024
"""Upper bound on one row band of float32 samples handed to the kernel."""
RAM_BAND_ROWS = 128


SORT_NETWORK_MAX = 16
"""Up to this many frames every sample takes part in the centre/scale estimate; beyond
it an evenly spaced subset of this size does (the clip is still applied to all)."""
COLUMN_CHUNK = 768
"""Columns processed together (a multiple of 3 so the channel pattern repeats per chunk):
the sorted block (≤ 16 × 768 float32) stays in L2."""
_SENTINEL = np.float32(np.finfo(np.float32).max)


def sorting_network(n: int) -> np.ndarray:
    """Comparators (a, b), a < b, of Batcher's odd-even merge sort for ``n`` inputs.

    A fixed sequence of compare-exchange steps sorts any input, so the same step can
    be applied to a whole row of pixels at once (SIMD min/max, no branches): about
    10× faster than per-pixel insertion sort, whose branches are unpredictable.
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
def _accept(  # pragma: no cover - compiled
    src: np.ndarray,
    off: np.ndarray,
    sc: float,
    gain: np.ndarray,
    wi: float,
    centre: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    w: int,
    sum_values: bool,
    acc: np.ndarray,
    wsum: np.ndarray,
    cov: np.ndarray,
) -> tuple[int, int]:
    """One frame's row chunk against the accepted range: add its weight (and with
    ``sum_values`` its weighted values) where it is kept; (rejected, covered) counts."""
    n_rej = 0
    n_cov = 0
    for c in range(w):
        x = (src[c] - off[c]) * sc
        d = (x - centre[c]) * gain[c]
        finite = x == x
        ok = finite & (d >= low[c]) & (d <= high[c])
        cov[c] += finite
        n_cov += finite
        n_rej += finite & (not ok)
        wsum[c] += wi if ok else 0.0
        if sum_values:
            acc[c] += wi * x if ok else 0.0
    return n_rej, n_cov


@compiled()
def _combine_kernel(  # pragma: no cover - compiled
    band: np.ndarray,  # (N, rows, C) float32, C-contiguous, NaN = not covered
    row_begin: int,  # rows row_begin:row_end of band are combined into out[0:...]
    row_end: int,
    subset: np.ndarray,  # (S,) int64 frames used for the centre/scale estimate
    comps: np.ndarray,  # (K, 2) sorting network for S inputs
    offsets: np.ndarray,  # (N, COLUMN_CHUNK) float32 background per column (channel pattern)
    scales: np.ndarray,  # (N,) float32 normalisation factors
    gains: np.ndarray,  # (N, COLUMN_CHUNK) float32 1 / relative noise per column (1: none)
    whiten: bool,  # per-frame acceptance bands (False: every gain is 1)
    weights: np.ndarray,  # (N,) float64
    floor: np.ndarray,  # (n_channels,) float64
    fl_pattern: np.ndarray,  # (COLUMN_CHUNK,) float64 floor per column (channel pattern)
    kappa_low: float,
    kappa_high: float,
    max_iter: int,
    use_median: bool,
    reject: bool,
    out: np.ndarray,  # (R, C) float32
    coverage: np.ndarray,  # (R, C // n_channels) uint16
    rejected: np.ndarray,  # (R, N) int64
    covered: np.ndarray,  # (R, N) int64
) -> None:
    n_frames, n_cols = band.shape[0], band.shape[2]
    n_rows = row_end - row_begin
    n_sub = subset.shape[0]
    n_ch = floor.shape[0]
    everyone = n_sub == n_frames
    for r in range(n_rows):
        v = np.empty((n_sub, COLUMN_CHUNK), dtype=np.float32)
        centre = np.empty(COLUMN_CHUNK, dtype=np.float32)
        low = np.empty(COLUMN_CHUNK, dtype=np.float32)
        high = np.empty(COLUMN_CHUNK, dtype=np.float32)
        acc = np.empty(COLUMN_CHUNK, dtype=np.float64)
        spread = np.empty(COLUMN_CHUNK, dtype=np.float64)
        wsum = np.empty(COLUMN_CHUNK, dtype=np.float64)
        cov = np.empty(COLUMN_CHUNK, dtype=np.int64)
        todo = np.empty(COLUMN_CHUNK, dtype=np.bool_)
        for c0 in range(0, n_cols, COLUMN_CHUNK):
            w = min(COLUMN_CHUNK, n_cols - c0)
            # 1. the estimation samples, uncovered (NaN) as +max so they sort last
            for j in range(n_sub):
                src = band[subset[j], row_begin + r, c0 : c0 + w]
                off = offsets[subset[j]]
                sc = scales[subset[j]]
                dst = v[j]
                for c in range(w):
                    y = (src[c] - off[c]) * sc
                    dst[c] = y if y == y else _SENTINEL
            _network_sort(v, comps, w)
            # 2a. fast path, vectorised over columns: fully covered pixels whose sorted
            #     extremes already lie inside median ± κσ need no iteration (most do;
            #     whitened, each frame is then tested against its own band in step 3)
            if n_sub >= 3:
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
                    acc[c] = m  # the median, for use_median (reset below otherwise)
                if not reject:
                    for c in range(w):
                        centre[c] = 0.0
                        low[c] = -np.inf
                        high[c] = np.inf
                elif whiten:
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
            else:
                for c in range(w):
                    todo[c] = True
            # 2b. the rest, per pixel: iterative median / IQR clipping on sorted samples
            for c in range(w):
                if not todo[c]:
                    continue
                n = 0
                while n < n_sub and v[n, c] < _SENTINEL:
                    n += 1
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
                    if v[1, c] - v[0, c] > max(kappa_low, kappa_high) * 1.4142135 * fl:
                        hi = 1
                        m = v[0, c]
                elif reject and n >= 3:
                    for _ in range(max_iter):
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
                if use_median:
                    acc[c] = _order_stat(v, lo, hi, 0.5, c)
            # 3. every frame against the accepted range, whitened: its distance from the
            #    centre over its relative noise (unwhitened: centre 0, gain 1, d = x);
            #    weighted sum, counts
            for c in range(w):
                wsum[c] = 0.0
                cov[c] = 0
                if not use_median:
                    acc[c] = 0.0
            for i in range(n_frames):
                src = band[i, row_begin + r, c0 : c0 + w]
                off = offsets[i]
                sc = scales[i]
                gain = gains[i]
                wi = weights[i]
                n_rej = 0
                n_cov = 0
                # the constant flag is folded: a test inside the loop would keep it scalar
                if use_median:
                    n_rej, n_cov = _accept(
                        src, off, sc, gain, wi, centre, low, high, w, False, acc, wsum, cov
                    )
                else:
                    n_rej, n_cov = _accept(
                        src, off, sc, gain, wi, centre, low, high, w, True, acc, wsum, cov
                    )
                rejected[r, i] += n_rej
                covered[r, i] += n_cov
            for c in range(w):
                if cov[c] == 0:
                    out[r, c0 + c] = np.nan
                elif use_median:
                    out[r, c0 + c] = acc[c]
                else:
                    out[r, c0 + c] = acc[c] / wsum[c] if wsum[c] > 0 else np.nan
                if (c0 + c) % n_ch == 0:
                    coverage[r, (c0 + c) // n_ch] = min(cov[c], 65535)


def warm_up() -> None:
    """Load the compiled kernel (numba's cache) by running it on a tiny input.

    The first call in a process costs ~0.2–1 s (LLVM start-up and cache loading);
    ``stack_files`` calls this in a background thread while frames are being
    analysed, so the cost overlaps I/O and detection instead of adding to them.
    """
    n, rows, cols = 3, 2, COLUMN_CHUNK
    store = FrameStore(n, rows, cols, "ram-float32", np.zeros((n, rows, cols), np.float32))
    combine_frames(
        store,
        3,
        np.ones(n),
        np.ones(3),
        offsets=np.zeros((n, 3)),
        scales=np.ones(n),
        kappa_low=3.0,
        kappa_high=3.0,
        max_iterations=1,
        method="mean",
        reject=True,
        band_budget_bytes=1 << 20,
        n_threads=1,
    )


@dataclass(slots=True)
class FrameStore:
    """Aligned frames, (N, H, W·C), in RAM or in a float16 scratch file.

    Use :meth:`create`; write each frame once with :meth:`put`, read bands with
    :meth:`band`, and :meth:`close` (removes the scratch file).
    """

    n_frames: int
    rows: int
    cols: int
    kind: str
    array: np.ndarray | None = None
    fd: int | None = None
    path: Path | None = None
    bytes_written: int = 0
    _band: np.ndarray | None = None  # float32 rows handed out by band(), reused
    _raw: np.ndarray | None = None  # float16 rows read from the scratch file, reused

    @classmethod
    def create(
        cls,
        n_frames: int,
        rows: int,
        cols: int,
        budget_bytes: int,
        scratch_dir: Path,
    ) -> FrameStore:
        """Pick RAM float32, RAM float16 or a float16 scratch file from the budget."""
        plane = rows * cols
        if n_frames * plane * 4 <= budget_bytes:
            return cls(
                n_frames,
                rows,
                cols,
                "ram-float32",
                memory.empty((n_frames, rows, cols), np.float32),
            )
        if n_frames * plane * 2 <= budget_bytes:
            return cls(
                n_frames,
                rows,
                cols,
                "ram-float16",
                memory.empty((n_frames, rows, cols), np.float16),
            )
        try:
            scratch_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".crowdsky-stack-", suffix=".f16", dir=scratch_dir)
        except OSError as exc:
            raise errors.OutputError(
                f"cannot create a scratch file in {scratch_dir}: {exc}"
            ) from exc
        return cls(n_frames, rows, cols, "disk-float16", None, fd, Path(name))

    @property
    def frame_bytes(self) -> int:
        """Bytes of one stored frame."""
        itemsize = 4 if self.kind == "ram-float32" else 2
        return self.rows * self.cols * itemsize

    def target(self, i: int) -> np.ndarray | None:
        """A writable float32 (H, W·C) view of slot ``i`` (RAM float32 only), else None.

        Warping straight into the slot saves a 25 MB copy per frame.
        """
        if self.kind == "ram-float32":
            assert self.array is not None
            slot: np.ndarray = self.array[i]
            return slot
        return None

    def put(self, i: int, frame: np.ndarray) -> None:
        """Store frame ``i`` ((H, W·C) float32). Thread-safe for distinct ``i``.

        float16 storage clips at float16's largest finite value (65504) so saturated
        pixels do not become infinite.
        """
        if self.kind == "ram-float32":
            assert self.array is not None
            if frame is not self.array[i] and not np.shares_memory(frame, self.array[i]):
                self.array[i] = frame
            return
        if self.array is not None:
            half.to_half(frame, self.array[i])
            return
        assert self.fd is not None
        data = np.empty(frame.shape, dtype=np.float16)
        half.to_half(frame, data)
        try:
            written = os.pwrite(self.fd, data.data.cast("B"), i * self.frame_bytes)
        except OSError as exc:
            raise errors.OutputError(f"scratch write failed: {exc}") from exc
        if written != data.nbytes:
            raise errors.OutputError("scratch write was short (disk full?)")
        self.bytes_written += written

    def band(self, r0: int, r1: int) -> np.ndarray:
        """Rows ``r0:r1`` of every frame as (N, r1 − r0, W·C) float32.

        A view for RAM float32. Otherwise the rows are converted into a buffer the
        store keeps and reuses for the next band (fresh band-sized arrays cost a page
        fault per 4 KiB, ~0.3 s per GB converted), so the returned array is only valid
        until the next call.
        """
        frames, first = self.band_rows(r0, r1)
        return frames[:, first : first + (r1 - r0)]

    def band_rows(self, r0: int, r1: int) -> tuple[np.ndarray, int]:
        """Rows ``r0:r1`` of every frame inside a C-contiguous (N, rows, W·C) float32
        array: the array and the index of row ``r0`` in it (valid as for :meth:`band`).

        The kernel is given whole contiguous arrays, not a band sliced out of them:
        numba compiles a slice across frames for arbitrary strides, and its loops
        then stay scalar (2.5× slower).
        """
        if self.kind == "ram-float32":
            assert self.array is not None
            return self.array, r0
        rows = r1 - r0
        if self._band is None or self._band.shape[1] < rows:
            self._band = memory.empty((self.n_frames, rows, self.cols), np.float32)
        band = self._band[:, :rows]
        if self.array is not None:
            for i in range(self.n_frames):
                half.from_half(self.array[i, r0:r1], band[i])
            return self._band, 0
        assert self.fd is not None
        if self._raw is None or self._raw.shape[1] < rows:
            self._raw = memory.empty((self.n_frames, rows, self.cols), np.float16)
        raw = self._raw[:, :rows]
        row_bytes = self.cols * 2
        for i in range(self.n_frames):
            view = memoryview(raw[i]).cast("B")
            got = os.preadv(self.fd, [view], i * self.frame_bytes + r0 * row_bytes)
            if got != view.nbytes:
                raise errors.OutputError("scratch read was short")
        for i in range(self.n_frames):
            half.from_half(raw[i], band[i])
        return self._band, 0

    def close(self) -> None:
        """Free memory (kept for the next store, see ``memory``) and remove the scratch file."""
        for array in (self.array, self._band, self._raw):
            memory.release(array)
        self.array = self._band = self._raw = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


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
    floor: np.ndarray,
    *,
    offsets: np.ndarray,
    scales: np.ndarray,
    kappa_low: float,
    kappa_high: float,
    max_iterations: int,
    method: str,
    reject: bool,
    band_budget_bytes: int,
    n_threads: int = 2,
    noise: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CombineOutput:
    """Combine the stored frames band by band.

    Parameters
    ----------
    store : FrameStore
        The aligned, normalised frames.
    n_channels : int
        Channels interleaved along the last axis (3 for RGB, 1 for mono).
    weights : ndarray
        (N,) frame weights (> 0).
    floor : ndarray
        (n_channels,) lower bound of the robust σ per channel, normalised ADU.
    offsets : ndarray
        (N, n_channels) background subtracted from each frame's channels.
    scales : ndarray
        (N,) factor applied after subtracting the background (1 / transparency).
    kappa_low, kappa_high : float
        Clipping thresholds in σ.
    max_iterations : int
        Clipping iterations.
    method : {'mean', 'median'}
        Combination of the survivors.
    reject : bool
        False disables rejection.
    band_budget_bytes : int
        Bytes of float32 samples per band.
    n_threads : int
        Threads running the kernel on row slices of each band.
    noise : ndarray or None
        (N, n_channels) each frame's background noise in normalised ADU. Rejection
        then measures every sample against its own frame's noise: median and σ come
        from the samples as without noise, and frame i's band is median ± κσ·r_i with
        r_i = noise_i / floor (clipped to 0.25–4), so noisier frames (smoothed less
        by interpolation, such as a reference that is not resampled: mono frames,
        ``demosaic='bilinear'``) are not clipped more often than the others. None
        treats every frame as equally noisy, as does ``'median'``; so does noise
        equal to the floor for every frame (the result is then the same).
    progress : callable or None
        Called with (bands done, bands total).

    Returns
    -------
    CombineOutput
    """
    n, rows, cols = store.n_frames, store.rows, store.cols
    budget = min(band_budget_bytes, BAND_BYTES_MAX)
    band_rows = max(1, min(rows, budget // max(1, n * cols * 4)))
    if store.kind == "ram-float32":
        band_rows = min(rows, RAM_BAND_ROWS)  # a view costs nothing; bands only pace progress
    out = memory.empty((rows, cols), np.float32)
    coverage = np.empty((rows, cols // n_channels), dtype=np.uint16)
    rejected = np.zeros((rows, n), dtype=np.int64)
    covered = np.zeros((rows, n), dtype=np.int64)
    offs = np.asarray(offsets, dtype=np.float32).reshape(n, n_channels)
    pattern = np.ascontiguousarray(np.tile(offs, (1, COLUMN_CHUNK // n_channels)))
    sc = np.ascontiguousarray(scales, dtype=np.float32)
    relative: np.ndarray
    if noise is None or method == "median":  # median: that of the kept range, one band
        relative = np.ones((n, n_channels), dtype=np.float32)
    else:
        fl_c = np.maximum(np.asarray(floor, dtype=np.float32).reshape(1, n_channels), 1e-6)
        relative = np.asarray(noise, dtype=np.float32).reshape(n, n_channels) / fl_c
        relative = np.clip(np.nan_to_num(relative, nan=1.0), 0.25, 4.0)
    whiten = bool(np.any(relative != 1.0))
    gains = np.ascontiguousarray(np.tile(1.0 / relative, (1, COLUMN_CHUNK // n_channels)))
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if n <= SORT_NETWORK_MAX:
        subset = np.arange(n, dtype=np.int64)
    else:
        subset = np.unique(np.linspace(0, n - 1, SORT_NETWORK_MAX).round().astype(np.int64))
    comps = sorting_network(len(subset))
    fl = np.ascontiguousarray(floor, dtype=np.float64)
    fl_pattern = np.ascontiguousarray(np.tile(fl, COLUMN_CHUNK // n_channels))
    n_bands = math.ceil(rows / band_rows)
    # The kernel releases the GIL; threads split each band by rows. (numba's own
    # ``parallel=True`` would cost ~0.5 s per process to start its threading layer.)
    with ThreadPoolExecutor(max(1, n_threads)) as pool:
        for b in range(n_bands):
            r0, r1 = b * band_rows, min(rows, (b + 1) * band_rows)
            frames, first = store.band_rows(r0, r1)
            cuts = np.linspace(0, r1 - r0, max(1, n_threads) * 2 + 1).round().astype(int)
            jobs = [
                pool.submit(
                    _combine_kernel,
                    frames,
                    first + a,
                    first + z,
                    subset,
                    comps,
                    pattern,
                    sc,
                    gains,
                    whiten,
                    w,
                    fl,
                    fl_pattern,
                    float(kappa_low),
                    float(kappa_high),
                    int(max_iterations),
                    method == "median",
                    bool(reject),
                    out[r0 + a : r0 + z],
                    coverage[r0 + a : r0 + z],
                    rejected[r0 + a : r0 + z],
                    covered[r0 + a : r0 + z],
                )
                for a, z in itertools.pairwise(cuts)
                if z > a
            ]
            for job in jobs:
                job.result()
            if progress is not None:
                progress(b + 1, n_bands)
    return CombineOutput(out, coverage, rejected.sum(axis=0), covered.sum(axis=0), n_bands)
