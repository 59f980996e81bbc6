"""Display stretches, linear array in, uint8 out.

``'linear'`` is the specification's stretch (:func:`linear_stretch`); ``'auto'``, for
the gallery, a midtones transfer function with an automatic black point
(:func:`auto_stretch`), which shows faint nebulosity a linear stretch leaves black.
"""

from __future__ import annotations

import numpy as np

from crowdsky.stacking import errors

__all__ = ["STRETCHES", "auto_stretch", "linear_stretch", "mtf", "stretch"]

STRETCHES = ("linear", "auto")
LOW_PERCENTILE = 1.0
HIGH_PERCENTILE = 99.5
TARGET_BACKGROUND = 0.25
SHADOW_CLIP_SIGMA = 2.8
SAMPLE_PIXELS = 500_000


def _sample(values: np.ndarray) -> np.ndarray:
    flat = values.reshape(-1)
    step = max(1, flat.size // SAMPLE_PIXELS)
    sample = flat[::step]
    finite: np.ndarray = sample[np.isfinite(sample)]
    return finite


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    out = np.nan_to_num(unit, nan=0.0, posinf=1.0, neginf=0.0)
    pixels: np.ndarray = (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return pixels


def linear_stretch(image: np.ndarray) -> np.ndarray:
    """Map the 1–99.5 percentile range to 0–255 (channels linked)."""
    sample = _sample(image)
    if sample.size == 0:
        return np.zeros(image.shape, dtype=np.uint8)
    lo, hi = np.percentile(sample, [LOW_PERCENTILE, HIGH_PERCENTILE])
    if not hi > lo:
        hi = lo + 1.0
    return _to_uint8((image - lo) / (hi - lo))


def mtf(x: np.ndarray, m: float) -> np.ndarray:
    """Midtones transfer function: maps 0 → 0, m → 0.5, 1 → 1."""
    x = np.clip(x, 0.0, 1.0)
    return ((m - 1.0) * x) / ((2.0 * m - 1.0) * x - m)


def auto_stretch(image: np.ndarray) -> np.ndarray:
    """Non-linear stretch with automatic black point, for the gallery.

    The midtones transfer function of PixInsight's screen-transfer function and
    Siril's autostretch: per channel the background is neutralised (median
    subtracted, so a sky colour cast goes); the black point is the background minus
    :data:`SHADOW_CLIP_SIGMA` robust σ; the midtones balance puts the background at
    :data:`TARGET_BACKGROUND` grey. σ and scale are shared by the channels, so star
    colours survive, and stars keep unsaturated cores.
    """
    img = (
        image.astype(np.float32, copy=True)
        if image.ndim == 3
        else image[..., None].astype(np.float32)
    )
    sigmas = []
    for c in range(img.shape[2]):
        s = _sample(img[..., c])
        if s.size == 0:
            return np.zeros(image.shape, dtype=np.uint8)
        med = float(np.median(s))
        img[..., c] -= med
        sigmas.append(1.4826 * float(np.median(np.abs(s - med))))
    sigma = float(np.median(sigmas)) or 1.0
    black = -SHADOW_CLIP_SIGMA * sigma
    top = float(np.percentile(_sample(img), 99.99))
    if not top > black:
        top = black + 1.0
    unit = (img - black) / (top - black)
    bg = float(np.clip(-black / (top - black), 1e-6, 0.999))
    # choose m so that mtf(bg, m) == TARGET_BACKGROUND
    t = TARGET_BACKGROUND
    m = bg * (t - 1.0) / (2.0 * bg * t - t - bg)
    out = _to_uint8(mtf(unit, float(np.clip(m, 1e-6, 0.999999))))
    return out if image.ndim == 3 else out[..., 0]


def stretch(image: np.ndarray, method: str = "linear") -> np.ndarray:
    """Stretch a float image (H, W) or (H, W, 3) to uint8 with ``method``.

    Raises
    ------
    InvalidInput
        Unknown method or unsupported shape.
    """
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise errors.InvalidInput(f"cannot stretch an image of shape {image.shape}")
    if method == "linear":
        return linear_stretch(image)
    if method == "auto":
        return auto_stretch(image)
    raise errors.InvalidInput(f"unknown stretch {method!r}; expected one of {STRETCHES}")
