"""Colour calibration of a solved stack: the white balance that makes a solar-colour star
neutral, from the catalogue colours (B−V) of the stars in the field.

The factors are for previews only; the science planes keep the camera's response.
When the stars cannot support a balance, :func:`balance` gives none and says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ColourBalance", "balance"]

SOLAR_B_V = 0.65
"""B−V of the Sun (Ramírez et al. 2012: 0.653 ± 0.003)."""
MATCH_ARCSEC = 3.0
MIN_STARS = 4
MIN_B_V_SPAN = 0.3
STELLAR_B_V = (-0.4, 2.0)
"""Catalogue colours outside this are not normal stars (Tycho-2 holds a few galaxy
nuclei: M 94's has B−V 3.4 in Stellarium) and are not used."""
CLIP_SIGMA = 3.0
FACTOR_RANGE = (0.2, 5.0)


@dataclass(frozen=True, slots=True)
class ColourBalance:
    """White balance of one stack.

    Attributes
    ----------
    factors : dict of str to float
        Multiplier per plane (GREEN 1) that makes a solar-colour star neutral; empty
        when there is no balance.
    slopes : dict of str to float
        d(m_plane − m_G)/d(B−V) per plane (RED, BLUE).
    scatter : float
        Robust σ of the colour residuals, mag (the larger of red and blue).
    n_stars : int
        Stars used in the fit.
    n_candidates : int
        STAR-TAB stars paired with a colour-catalogue star.
    b_v : ndarray
        Per STAR-TAB star, the catalogue B−V (NaN when unpaired).
    reason : str
        Why there is no balance ('' when there is one).
    """

    factors: dict[str, float]
    slopes: dict[str, float]
    scatter: float
    n_stars: int
    n_candidates: int
    b_v: np.ndarray
    reason: str = ""

    @property
    def calibrated(self) -> bool:
        """True when a balance was found."""
        return bool(self.factors)


def balance(
    ra_deg: np.ndarray,
    dec_deg: np.ndarray,
    flux: dict[str, np.ndarray],
    usable: dict[str, np.ndarray],
    cat_ra_deg: np.ndarray,
    cat_dec_deg: np.ndarray,
    cat_b_v: np.ndarray,
) -> ColourBalance:
    """White balance from STAR-TAB fluxes and catalogue colours.

    For every star paired with a catalogue star (:data:`MATCH_ARCSEC`), unsaturated in
    all three planes and of stellar B−V (:data:`STELLAR_B_V`), the instrumental colours
    ``m_R − m_G = −2.5 log10(F_R / F_G)`` and ``m_B − m_G`` are fitted as straight
    lines in B−V (least squares, :data:`CLIP_SIGMA` robust clipping). At the Sun's B−V
    (:data:`SOLAR_B_V`) the lines give a G2V star's instrumental colour; scaling red by
    ``10**(0.4 (m_R − m_G)_sun)`` and blue likewise (green fixed) makes it neutral. No
    balance with fewer than :data:`MIN_STARS` stars, a B−V span under
    :data:`MIN_B_V_SPAN` or a factor outside :data:`FACTOR_RANGE` (a wrong match or a
    non-RGB stack).

    Parameters
    ----------
    ra_deg, dec_deg : ndarray
        Sky positions of the STAR-TAB stars (from the WCS).
    flux : dict of str to ndarray
        Aperture flux per plane (RED, GREEN, BLUE) of every STAR-TAB star.
    usable : dict of str to ndarray
        Per plane, the stars whose flux is positive and unsaturated.
    cat_ra_deg, cat_dec_deg, cat_b_v : ndarray
        Colour-catalogue stars of the field.

    Returns
    -------
    ColourBalance
    """
    n = len(ra_deg)
    b_v = np.full(n, np.nan)
    if not all(name in flux for name in ("RED", "GREEN", "BLUE")):
        return ColourBalance({}, {}, math.nan, 0, 0, b_v, "not an RGB stack")
    nearest, dist = _nearest(ra_deg, dec_deg, cat_ra_deg, cat_dec_deg)
    paired = dist <= MATCH_ARCSEC
    b_v[paired] = cat_b_v[nearest[paired]]
    n_candidates = int(paired.sum())
    stellar = (b_v >= STELLAR_B_V[0]) & (b_v <= STELLAR_B_V[1])  # False for NaN
    good = paired & usable["RED"] & usable["GREEN"] & usable["BLUE"] & stellar
    x = b_v[good]
    if x.size < MIN_STARS:
        reason = f"{int(x.size)} unsaturated stars with a catalogue colour (need {MIN_STARS})"
        return ColourBalance({}, {}, math.nan, int(x.size), n_candidates, b_v, reason)
    if float(x.max() - x.min()) < MIN_B_V_SPAN:
        reason = f"B-V of the {x.size} colour stars spans under {MIN_B_V_SPAN} mag"
        return ColourBalance({}, {}, math.nan, int(x.size), n_candidates, b_v, reason)
    factors, slopes, scatters, used = {"GREEN": 1.0}, {}, [], x.size
    for name in ("RED", "BLUE"):
        colour = -2.5 * np.log10(flux[name][good] / flux["GREEN"][good])
        fit = _robust_line(x, colour)
        if fit is None:
            reason = f"{name.lower()} colours of the {x.size} stars do not fit a line"
            return ColourBalance({}, {}, math.nan, int(x.size), n_candidates, b_v, reason)
        offset, slope, sigma, kept = fit
        factors[name] = 10.0 ** (0.4 * (offset + slope * SOLAR_B_V))
        slopes[name] = slope
        scatters.append(sigma)
        used = min(used, kept)
    if not all(FACTOR_RANGE[0] <= f <= FACTOR_RANGE[1] for f in factors.values()):
        shown = ", ".join(f"{k} {v:.2f}" for k, v in factors.items())
        reason = f"white balance {shown} outside {FACTOR_RANGE}: refused"
        return ColourBalance({}, {}, math.nan, int(used), n_candidates, b_v, reason)
    return ColourBalance(factors, slopes, max(scatters), int(used), n_candidates, b_v)


def _robust_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, int] | None:
    """Least-squares line with iterative clipping: (offset, slope, robust σ, stars)."""
    keep = np.isfinite(y)
    for _ in range(5):
        if keep.sum() < MIN_STARS or float(np.ptp(x[keep])) < MIN_B_V_SPAN:
            return None
        slope, offset = np.polyfit(x[keep], y[keep], 1)
        residual = y - (offset + slope * x)
        sigma = 1.4826 * float(np.median(np.abs(residual[keep])))
        new = np.isfinite(y) & (np.abs(residual) <= CLIP_SIGMA * max(sigma, 0.02))
        if (new == keep).all():
            break
        keep = new
    return float(offset), float(slope), sigma, int(keep.sum())


def _nearest(
    ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per (ra1, dec1), the index of the nearest (ra2, dec2) and the distance (arcsec)."""
    if len(ra2) == 0 or len(ra1) == 0:
        return np.zeros(len(ra1), dtype=np.int64), np.full(len(ra1), np.inf)
    a = _unit(ra1, dec1)
    b = _unit(ra2, dec2)
    dots = np.clip(a @ b.T, -1.0, 1.0)
    nearest = np.argmax(dots, axis=1)
    dist = np.degrees(np.arccos(dots[np.arange(len(a)), nearest])) * 3600.0
    dist[~np.isfinite(dist)] = np.inf
    return nearest, dist


def _unit(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
