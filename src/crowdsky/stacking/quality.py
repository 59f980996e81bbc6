"""Frame quality: scores, reference choice, transparency, weights, channel statistics.

The reference is chosen by quality (:func:`frame_scores`), and it must also register
onto most of a sample of the other frames (:func:`choose_reference`): a sharp,
star-rich frame of another field mixed into a chunk would otherwise become the
reference and get every real frame rejected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "channel_statistics",
    "choose_reference",
    "frame_scores",
    "frame_weights",
    "transparency",
]

CONSENSUS_PEERS = 6
MAX_REFERENCE_CANDIDATES = 5
STAT_STRIDE = 7


def frame_scores(n_stars: np.ndarray, fwhm: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Quality score per frame (higher is better; 0 for unusable frames):
    ``n_stars × (median FWHM / FWHM)² × (median noise / noise)``, medians over the
    usable frames."""
    n_stars = np.asarray(n_stars, dtype=np.float64)
    fwhm = np.asarray(fwhm, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    ok = (n_stars > 0) & np.isfinite(fwhm) & (fwhm > 0) & np.isfinite(noise) & (noise > 0)
    if not ok.any():
        return np.zeros_like(n_stars)
    f0, n0 = np.median(fwhm[ok]), np.median(noise[ok])
    score = np.zeros_like(n_stars)
    score[ok] = n_stars[ok] * (f0 / fwhm[ok]) ** 2 * (n0 / noise[ok])
    return score


def choose_reference(
    scores: np.ndarray,
    matches: Callable[[int, int], bool],
) -> int | None:
    """Pick the best-scoring frame that agrees with the majority of the others.

    Parameters
    ----------
    scores : ndarray
        Per-frame score from :func:`frame_scores` (0 = unusable).
    matches : callable
        ``matches(i, j)`` tells whether frame ``i`` registers onto frame ``j``.

    Returns
    -------
    int or None
        Index of the reference, or None when no frame is usable.
    """
    usable = [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] > 0]
    if not usable:
        return None
    if len(usable) <= 2:
        return usable[0]
    best, best_votes = usable[0], -1
    for cand in usable[:MAX_REFERENCE_CANDIDATES]:
        others = sorted(i for i in usable if i != cand)
        step = max(1, len(others) // CONSENSUS_PEERS)
        peers = others[::step][:CONSENSUS_PEERS]
        votes = sum(1 for p in peers if matches(p, cand))
        if votes * 2 >= len(peers):
            return cand
        if votes > best_votes:
            best, best_votes = cand, votes
    return best


def transparency(flux_frame: np.ndarray, flux_ref: np.ndarray) -> float:
    """Median flux ratio frame / reference over matched stars with positive fluxes."""
    ok = (flux_frame > 0) & (flux_ref > 0)
    if ok.sum() < 3:
        return float("nan")
    return float(np.median(flux_frame[ok] / flux_ref[ok]))


def frame_weights(
    noise: Sequence[float],
    transp: Sequence[float],
    fwhm: Sequence[float],
    fwhm_ref: float,
    mode: str,
) -> np.ndarray:
    """Relative combination weights (max 1) for the accepted frames.

    ``'noise'``: inverse variance of the normalised background, (transp / noise)²;
    ``'quality'`` multiplies it by (FWHM_ref / FWHM)², clipped to 0.25–4; ``'none'``: 1.
    """
    n = len(noise)
    if mode == "none" or n == 0:
        return np.ones(n)
    noise_a = np.asarray(noise, dtype=np.float64)
    t = np.nan_to_num(np.asarray(transp, dtype=np.float64), nan=1.0)
    w = (t / np.maximum(noise_a, 1e-9)) ** 2
    if mode == "quality":
        f = np.asarray(fwhm, dtype=np.float64)
        sharp = np.where(np.isfinite(f) & (f > 0), (fwhm_ref / f) ** 2, 1.0)
        w = w * np.clip(sharp, 0.25, 4.0)
    w = np.where(np.isfinite(w) & (w > 0), w, 0.0)
    top = w.max() if w.size else 0.0
    return w / top if top > 0 else np.ones(n)


def channel_statistics(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel background and noise of the covered pixels of a strided sample.

    The background is the median; the noise the RMS of the values within ±4 MAD-σ of
    it (robust to stars and the galaxy, but an RMS: see the comment in the code).

    Parameters
    ----------
    image : ndarray
        (H, W, C) or (H, W) float32, NaN where not covered.

    Returns
    -------
    (ndarray, ndarray)
        Background and noise, each of shape (C,).
    """
    img = image if image.ndim == 3 else image[..., None]
    # one copy, channel-major: each channel's sample is then contiguous
    sample = np.ascontiguousarray(img[::STAT_STRIDE, ::STAT_STRIDE].transpose(2, 0, 1))
    sample = sample.reshape(img.shape[2], -1)
    back = np.empty(img.shape[2])
    noise = np.empty(img.shape[2])
    for c in range(img.shape[2]):
        v = sample[c]
        v = v[np.isfinite(v)]
        if v.size == 0:
            back[c], noise[c] = 0.0, 1.0
            continue
        med = float(np.median(v))
        mad_sigma = 1.4826 * float(np.median(np.abs(v - med))) or 1.0
        # RMS of the values within ±4 MAD-σ: demosaiced noise mixes native and
        # interpolated pixels, whose MAD understates the RMS that sets the scatter
        # between frames (a too-small floor makes the clip reject good samples)
        core = v[np.abs(v - med) < 4.0 * mad_sigma]
        back[c] = med
        noise[c] = max(float(core.std()) if core.size > 10 else mad_sigma, 1e-3)
    return back, noise
