"""Photometric calibration of a solved stack against its catalogue stars.

Per colour plane, a zero point from aperture photometry of the matched, unsaturated
catalogue stars, and from the green one the limiting magnitude and the sky brightness
(:func:`calibrate`). The only magnitude of the Tycho-2 index files is V_T, so every
plane is calibrated against it and no colour term is removed: each plane's zero point
is off by a star-colour-dependent few tenths of a magnitude, and its scatter says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ChannelZeroPoint", "Photometry", "calibrate"]

APERTURE_FWHM = 2.0
ANNULUS_FWHM = (3.5, 6.0)
DEFAULT_FWHM_PX = 3.0
MIN_CALIBRATION_STARS = 3
CLIP_SIGMA = 3.0
SATURATION_FRACTION = 0.9
"""A star whose brightest aperture pixel reaches this share of the plane's maximum is
taken as saturated (S50 cores clip at one level)..."""
FULL_SCALE_ADU = 65535.0
CLIPPED_ABOVE = 0.5
"""...but only when that maximum reaches this share of the raw frames' 16-bit full
scale (the stack keeps their ADU): otherwise no star is clipped, and the brightest
stars are the best calibrators (the M 94 stack peaks at 16,400 ADU, its raw frames at
23,400 of 65,535)."""
LIMIT_SNR = 5.0
SKY_SAMPLE = 200_000
"""Pixels sampled (a regular stride) for the sky level and its noise."""
DEFAULT_PEDESTAL_ADU = 600.0
"""Black level of S50 raw frames (FW 4.27, gain 80): the floor under the sky of the
real M 94 frames, consistent across the three colour planes' sky levels."""
PEDESTAL_KEYWORDS = ("PEDESTAL", "BLKLEVEL", "OFFSET")


@dataclass(frozen=True, slots=True)
class ChannelZeroPoint:
    """Zero point of one plane: ``m = zp − 2.5 log10(ADU/s)``."""

    name: str
    zp: float
    scatter: float
    n_stars: int


@dataclass(frozen=True, slots=True)
class Photometry:
    """Calibration of one stack.

    Attributes
    ----------
    channels : list of ChannelZeroPoint
        One per plane (RED, GREEN, BLUE or LUM).
    limiting_mag : float
        5 σ point-source limit in the catalogue band (NaN when not calibrated).
    sqm : float
        Sky brightness, mag/arcsec² (NaN when not calibrated).
    pedestal_adu : float
        Black level subtracted for the SQM.
    aperture_px : float
        Aperture radius used.
    n_candidates : int
        Matched catalogue stars with a magnitude.
    reason : str
        Why there is no calibration ('' when calibrated).
    star_flux : dict
        Per plane, the aperture flux of every STAR-TAB star (ADU, NaN outside).
    star_usable : dict
        Per plane, the STAR-TAB stars with a positive, unsaturated flux.
    """

    channels: list[ChannelZeroPoint]
    limiting_mag: float
    sqm: float
    pedestal_adu: float
    aperture_px: float
    n_candidates: int
    reason: str = ""
    star_flux: dict[str, np.ndarray] = field(default_factory=dict)
    star_usable: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def calibrated(self) -> bool:
        """True when at least one plane has a zero point."""
        return any(math.isfinite(c.zp) for c in self.channels)

    def channel(self, name: str) -> ChannelZeroPoint | None:
        """The zero point of a plane by name."""
        return next((c for c in self.channels if c.name == name), None)


def calibrate(
    planes: dict[str, np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    fwhm_px: np.ndarray,
    cat_mag: np.ndarray,
    *,
    exposure_s: float,
    scale_arcsec: float,
    pedestal_adu: float = DEFAULT_PEDESTAL_ADU,
) -> Photometry:
    """Zero points, limiting magnitude and SQM.

    Per plane the zero point is the median over the matched, unsaturated stars of
    ``m_cat + 2.5 log10(F / t)``, ``F`` the aperture flux (ADU, local annulus
    background removed) and ``t`` the exposure of one sub-frame (the stack is a mean
    in the reference frame's ADU); outliers (variables, blends) are clipped at
    :data:`CLIP_SIGMA` robust σ and the scatter is the robust σ of the rest. So
    ``m = ZP − 2.5 log10(F / t)`` for point sources through this aperture. From the
    reference plane's zero point: the limiting magnitude of a point source at
    :data:`LIMIT_SNR` σ, σ from the plane's sky noise (an underestimate of a resampled
    stack's noise: the limit is optimistic), and the sky brightness above the black
    level per second and square arcsecond.

    Parameters
    ----------
    planes : dict of str to ndarray
        Colour planes by name (float32, NaN where uncovered); GREEN (or LUM) is
        the reference plane for the limit and the SQM.
    x, y : ndarray
        0-based positions of every STAR-TAB star.
    fwhm_px : ndarray
        Their FWHM (NaN allowed); the median sets the aperture.
    cat_mag : ndarray
        Catalogue magnitude per star (NaN when unmatched).
    exposure_s : float
        Exposure of one sub-frame, seconds.
    scale_arcsec : float
        Pixel scale, arcsec per pixel.
    pedestal_adu : float
        Black level under the sky.

    Returns
    -------
    Photometry
    """
    radius, annulus = _aperture(fwhm_px)
    matched = np.isfinite(cat_mag)
    n_candidates = int(matched.sum())
    reference = "GREEN" if "GREEN" in planes else next(iter(planes))
    channels: list[ChannelZeroPoint] = []
    fluxes: dict[str, np.ndarray] = {}
    usable: dict[str, np.ndarray] = {}
    limit, sqm = float("nan"), float("nan")
    t = exposure_s if exposure_s > 0 else 1.0
    for name, plane in planes.items():
        fluxes[name], usable[name] = _star_fluxes(plane, x, y, radius, annulus)
        good = matched & usable[name]
        flux = fluxes[name][good]
        zp, scatter, n = _robust_zero_point(cat_mag[good] + 2.5 * np.log10(flux / t))
        channels.append(ChannelZeroPoint(name, zp, scatter, n))
        if name == reference and math.isfinite(zp):
            sky, noise = _sky_statistics(np.asarray(plane))
            area = math.pi * radius**2
            if noise > 0:  # a flat (synthetic or clipped) sky has no noise to limit by
                limit = zp - 2.5 * math.log10(LIMIT_SNR * noise * math.sqrt(area) / t)
            above = sky - pedestal_adu
            if above > 0 and scale_arcsec > 0:
                sqm = zp - 2.5 * math.log10(above / t / scale_arcsec**2)
    reason = ""
    if not any(math.isfinite(c.zp) for c in channels):
        reason = (
            f"{n_candidates} catalogue stars matched, fewer than {MIN_CALIBRATION_STARS} "
            "unsaturated ones with a good aperture"
        )
    return Photometry(
        channels, limit, sqm, pedestal_adu, radius, n_candidates, reason, fluxes, usable
    )


def _aperture(fwhm_px: np.ndarray) -> tuple[float, tuple[float, float]]:
    """Aperture radius and background annulus (inner, outer), pixels, from the
    stars' median FWHM (:data:`DEFAULT_FWHM_PX` when none is known)."""
    finite_fwhm = np.asarray(fwhm_px, dtype=float)
    finite_fwhm = finite_fwhm[np.isfinite(finite_fwhm) & (finite_fwhm > 0)]
    fwhm = float(np.median(finite_fwhm)) if finite_fwhm.size else DEFAULT_FWHM_PX
    return APERTURE_FWHM * fwhm, (ANNULUS_FWHM[0] * fwhm, ANNULUS_FWHM[1] * fwhm)


def _star_fluxes(
    plane: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    radius: float,
    annulus: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Every star's aperture flux on one plane (NaN where sep flags it), and whether
    it may calibrate: a positive flux and a peak clear of saturation."""
    import sep

    # one native copy per plane (FITS planes are big-endian), cleaned in place: each
    # full-plane temporary costs a fresh process ~0.1 s of page faults
    clean = np.array(plane, dtype=np.float32, order="C")
    bad = ~np.isfinite(clean)
    clean[bad] = 0.0
    flux, _err, flag = sep.sum_circle(clean, x, y, radius, bkgann=annulus, mask=bad, subpix=5)
    flux = np.where(flag == 0, flux, np.nan)
    peak = _aperture_max(clean, x, y, radius)
    top = float(clean.max()) if clean.size and not bad.all() else float("inf")
    if top < CLIPPED_ABOVE * FULL_SCALE_ADU:
        top = float("inf")  # nothing near the full scale: nothing saturated
    return flux, np.isfinite(flux) & (flux > 0) & (peak < SATURATION_FRACTION * top)


def _robust_zero_point(values: np.ndarray) -> tuple[float, float, int]:
    values = values[np.isfinite(values)]
    for _ in range(5):
        if values.size < MIN_CALIBRATION_STARS:
            return float("nan"), float("nan"), int(values.size)
        centre = float(np.median(values))
        sigma = 1.4826 * float(np.median(np.abs(values - centre)))
        keep = np.abs(values - centre) <= CLIP_SIGMA * max(sigma, 0.02)
        if keep.all():
            break
        values = values[keep]
    if values.size < MIN_CALIBRATION_STARS:
        return float("nan"), float("nan"), int(values.size)
    centre = float(np.median(values))
    sigma = 1.4826 * float(np.median(np.abs(values - centre)))
    return centre, sigma, int(values.size)


def _aperture_max(data: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    rows, cols = data.shape
    r = max(1, math.ceil(radius))
    out = np.full(len(x), np.nan)
    for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
        if not (math.isfinite(xi) and math.isfinite(yi)):
            continue
        c, k = round(xi), round(yi)
        box = data[max(0, k - r) : min(rows, k + r + 1), max(0, c - r) : min(cols, c + r + 1)]
        if box.size:
            out[i] = float(box.max())
    return out


def _sky_statistics(data: np.ndarray) -> tuple[float, float]:
    """Median sky and its robust per-pixel noise (a sample of the finite pixels)."""
    values = data.reshape(-1)
    values = values[:: max(1, values.size // SKY_SAMPLE)]  # sample first: no full-plane copy
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    return median, 1.4826 * mad


def pedestal_from_header(header: object) -> float:
    """The black level from a header keyword, else :data:`DEFAULT_PEDESTAL_ADU`."""
    get = getattr(header, "get", None)
    if get is not None:
        for key in PEDESTAL_KEYWORDS:
            value = get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                return float(value)
    return DEFAULT_PEDESTAL_ADU
