"""numba kernels for the per-frame analysis: one GIL release per step instead of many.

The analysis threads of ``stack_files`` share the GIL with sep, which holds it for
its whole background, extraction and photometry calls (~6 ms per frame). Every
numpy or OpenCV call of the rest of a frame's analysis releases the GIL and must
take it back when done, and that waits until the thread inside sep returns: with
~25 such calls per frame (decoding, hot-pixel search, superpixel sum, binning) a
second analysis thread gained nothing (15 frames: 0.18 s with one thread and with
two). These kernels do the same steps in one call each, ``nogil``, with results
identical to the numpy code they replace (``tests/stacking/test_mosaic_kernels.py``):

* :func:`decode_be_uint16`: big-endian FITS int16 + BZERO 32768 → uint16, in place;
* :func:`sky_statistics`: median and MAD of every 7th pixel, in float32 as numpy;
* :func:`peak_candidates`: pixels standing ``threshold`` above the lower of two of
  their neighbours, a superset of the hot pixels (see ``debayer.find_hot_pixels``);
* :func:`superpixel_sum`: sum of each 2×2 cell in float32 (exact for uint16);
* :func:`bin2_mean`: mean of each 2×2 block of a float32 image, in numpy's order.

The callers use them only once :func:`warm_up` has loaded them (``kernels.loaded``), so
the first stack of a process analyses its frames with numpy while numba loads in
the background, and no analysis thread ever waits for a compilation.
"""

from __future__ import annotations

import numpy as np

from crowdsky.stacking import kernels
from crowdsky.stacking.kernels import compiled

__all__ = [
    "SAMPLE_STEP",
    "bin2_mean",
    "decode_be_uint16",
    "peak_candidates",
    "ready",
    "sky_statistics",
    "superpixel_sum",
    "warm_up",
]

SAMPLE_STEP = 7
"""Every 7th pixel of every 7th row estimates the sky (``debayer.find_hot_pixels``)."""


def ready() -> bool:
    """True once :func:`warm_up` has loaded every kernel of this module."""
    return kernels.loaded("mosaic_kernels") is not None


def warm_up() -> None:
    """Load (from numba's cache) or compile every kernel for the types the engine uses."""
    mosaic = np.zeros((8, 8), np.uint16)
    decode_be_uint16(mosaic)
    sky_statistics(mosaic, SAMPLE_STEP)
    peak_candidates(mosaic, 1, np.empty(4, np.int64))
    lum = np.empty((4, 4), np.float32)
    superpixel_sum(mosaic, lum)
    bin2_mean(lum, np.empty((2, 2), np.float32))
    kernels.mark_ready("mosaic_kernels")


@compiled()
def decode_be_uint16(data: np.ndarray) -> None:  # pragma: no cover (numba)
    """Big-endian int16 with BZERO 32768, as read from the file, to native uint16."""
    flat = data.reshape(-1)
    for k in range(flat.size):
        v = np.uint32(flat[k])
        flat[k] = np.uint16((((v >> 8) | (v << 8)) & 0xFFFF) ^ 0x8000)


@compiled()
def sky_statistics(mosaic: np.ndarray, step: int) -> tuple[float, float]:  # pragma: no cover
    """Median of ``mosaic[::step, ::step]`` and the median absolute deviation from it,
    both computed in float32 as numpy computes them (odd or even sample sizes)."""
    rows = (mosaic.shape[0] + step - 1) // step
    cols = (mosaic.shape[1] + step - 1) // step
    sample = np.empty(rows * cols, np.float32)
    k = 0
    for i in range(0, mosaic.shape[0], step):
        for j in range(0, mosaic.shape[1], step):
            sample[k] = np.float32(mosaic[i, j])
            k += 1
    sky = np.float32(np.median(sample))
    for k in range(sample.size):
        sample[k] = np.abs(sample[k] - sky)
    return float(sky), float(np.float32(np.median(sample)))


@compiled()
def peak_candidates(
    mosaic: np.ndarray, threshold: int, out: np.ndarray
) -> int:  # pragma: no cover (numba)
    """Flat indices (ascending) of pixels more than ``threshold`` above the lower of
    two of their neighbours (left and right; up and down in the first and last
    column; one of each in a corner); returns their number, or −1 when ``out`` is
    too small. At most one neighbour can be above a pixel's second-brightest one, so
    this includes every pixel more than ``threshold`` above its second-brightest
    neighbour."""
    rows, cols = mosaic.shape
    n = 0
    for i in range(rows):
        row = mosaic[i]
        up = mosaic[i - 1] if i > 0 else mosaic[i + 1]
        down = mosaic[i + 1] if i < rows - 1 else mosaic[i - 1]
        # first column: up and down (in a corner the one vertical and the right one)
        inner = 0 < i < rows - 1
        lower = min(up[0], down[0]) if inner else min(up[0], row[1])
        if np.int64(row[0]) - np.int64(lower) > threshold:
            if n == out.size:
                return -1
            out[n] = i * cols
            n += 1
        for j in range(1, cols - 1):
            lower = min(row[j - 1], row[j + 1])
            if np.int64(row[j]) - np.int64(lower) > threshold:
                if n == out.size:
                    return -1
                out[n] = i * cols + j
                n += 1
        last = cols - 1
        inner = 0 < i < rows - 1
        lower = min(up[last], down[last]) if inner else min(up[last], row[last - 1])
        if np.int64(row[last]) - np.int64(lower) > threshold:
            if n == out.size:
                return -1
            out[n] = i * cols + last
            n += 1
    return n


@compiled()
def superpixel_sum(mosaic: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover (numba)
    """``out[i, j]`` = the sum of the 2×2 cell (2i, 2j) in float32, added in the order
    of ``debayer.superpixel_luminance``: top left, top right, bottom left, bottom right."""
    for i in range(out.shape[0]):
        top = mosaic[2 * i]
        bottom = mosaic[2 * i + 1]
        row = out[i]
        for j in range(out.shape[1]):
            total = np.float32(top[2 * j]) + np.float32(top[2 * j + 1])
            total += np.float32(bottom[2 * j])
            row[j] = total + np.float32(bottom[2 * j + 1])


@compiled()
def bin2_mean(image: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover (numba)
    """``out[i, j]`` = the mean of the 2×2 block (2i, 2j) in float32, added in the order
    of ``detect.measure_background``: top left, bottom left, top right, bottom right."""
    quarter = np.float32(0.25)
    for i in range(out.shape[0]):
        top = image[2 * i]
        bottom = image[2 * i + 1]
        row = out[i]
        for j in range(out.shape[1]):
            total = top[2 * j] + bottom[2 * j]
            total += top[2 * j + 1]
            row[j] = (total + bottom[2 * j + 1]) * quarter
