"""TAN-SIP world coordinate systems: fitting to matched stars, header cards, geometry.

A WCS here is a gnomonic (TAN) projection about ``crval`` with the reference pixel
at the image centre, a CD matrix and second-order SIP polynomials (``A``/``B`` for
pixel → sky, ``AP``/``BP`` fitted on a grid for sky → pixel). Pixel coordinates are
0-based (x = column, y = row) as in STAR-TAB; FITS ``CRPIX`` is 1-based.

The fit is linear least squares in the tangent plane, repeated with the tangent
point moved to the fitted centre (two passes converge to < 1 mas). Without
astropy.coordinates (a 0.5 s import) so a fresh worker solves quickly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TanSip", "fit_tan_sip", "position_angle_deg", "tangent_plane"]

SIP_ORDER = 2
MIN_STARS_FOR_SIP = 12
"""Fewer matched stars than this fit a plain TAN (the SIP terms stay zero)."""
INVERSE_GRID = 24


@dataclass(frozen=True, slots=True)
class TanSip:
    """A TAN-SIP WCS.

    Attributes
    ----------
    crval : tuple of float
        Tangent point (RA, Dec), degrees.
    crpix : tuple of float
        Reference pixel, 0-based (x, y).
    cd : ndarray
        2×2 CD matrix, degrees per pixel.
    a, b : ndarray
        SIP forward coefficients, ``a[p, q]`` multiplies ``u**p * v**q`` (zero for
        ``p + q < 2``).
    ap, bp : ndarray
        SIP inverse coefficients (``p + q ≤ order``).
    shape : tuple of int
        Image (rows, columns).
    """

    crval: tuple[float, float]
    crpix: tuple[float, float]
    cd: np.ndarray
    a: np.ndarray
    b: np.ndarray
    ap: np.ndarray
    bp: np.ndarray
    shape: tuple[int, int]

    @property
    def has_sip(self) -> bool:
        """True when any SIP term is non-zero."""
        return bool(np.any(self.a) or np.any(self.b))

    @property
    def scale_arcsec(self) -> float:
        """Pixel scale, arcsec per pixel (square root of |det CD|)."""
        return math.sqrt(abs(float(np.linalg.det(self.cd)))) * 3600.0

    @property
    def determinant(self) -> float:
        """det CD: positive for a mirrored image (Seestars), negative for a true sky view."""
        return float(np.linalg.det(self.cd))

    @property
    def rotation_deg(self) -> float:
        """Position angle of the image's +y axis, north through east, degrees [0, 360)."""
        return position_angle_deg(self.cd)

    def pixel_to_world(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """0-based pixels → (RA, Dec) degrees."""
        u = np.asarray(x, dtype=np.float64) - self.crpix[0]
        v = np.asarray(y, dtype=np.float64) - self.crpix[1]
        du, dv = _poly(self.a, u, v), _poly(self.b, u, v)
        xi = self.cd[0, 0] * (u + du) + self.cd[0, 1] * (v + dv)
        eta = self.cd[1, 0] * (u + du) + self.cd[1, 1] * (v + dv)
        return _deproject(xi, eta, self.crval)

    def world_to_pixel(self, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(RA, Dec) degrees → 0-based pixels (NaN behind the tangent plane)."""
        xi, eta = tangent_plane(np.asarray(ra), np.asarray(dec), self.crval)
        inv = np.linalg.inv(self.cd)
        u = inv[0, 0] * xi + inv[0, 1] * eta
        v = inv[1, 0] * xi + inv[1, 1] * eta
        return (
            u + _poly(self.ap, u, v) + self.crpix[0],
            v + _poly(self.bp, u, v) + self.crpix[1],
        )

    def header_cards(self) -> list[tuple[str, Any, str]]:
        """FITS cards of this WCS (``CTYPE`` …-TAN-SIP, 1-based ``CRPIX``)."""
        cards: list[tuple[str, Any, str]] = [
            ("WCSAXES", 2, "number of world coordinate axes"),
            ("CTYPE1", "RA---TAN-SIP", "gnomonic projection + SIP distortion"),
            ("CTYPE2", "DEC--TAN-SIP", "gnomonic projection + SIP distortion"),
            ("CUNIT1", "deg", "unit of CRVAL1 and CD1_*"),
            ("CUNIT2", "deg", "unit of CRVAL2 and CD2_*"),
            ("RADESYS", "ICRS", "reference frame of the catalogue"),
            ("EQUINOX", 2000.0, "equinox of the coordinates"),
            ("CRVAL1", float(self.crval[0]), "[deg] RA of the reference point"),
            ("CRVAL2", float(self.crval[1]), "[deg] Dec of the reference point"),
            ("CRPIX1", float(self.crpix[0] + 1.0), "reference pixel x (1-based)"),
            ("CRPIX2", float(self.crpix[1] + 1.0), "reference pixel y (1-based)"),
            ("CD1_1", float(self.cd[0, 0]), "[deg/px] linear transformation"),
            ("CD1_2", float(self.cd[0, 1]), "[deg/px] linear transformation"),
            ("CD2_1", float(self.cd[1, 0]), "[deg/px] linear transformation"),
            ("CD2_2", float(self.cd[1, 1]), "[deg/px] linear transformation"),
        ]
        for letter, coeffs, comment in (
            ("A", self.a, "SIP forward x"),
            ("B", self.b, "SIP forward y"),
            ("AP", self.ap, "SIP inverse x"),
            ("BP", self.bp, "SIP inverse y"),
        ):
            order = coeffs.shape[0] - 1
            cards.append((f"{letter}_ORDER", order, f"{comment} polynomial order"))
            for p in range(order + 1):
                for q in range(order + 1 - p):
                    if letter in ("A", "B") and p + q < 2:
                        continue
                    cards.append((f"{letter}_{p}_{q}", float(coeffs[p, q]), comment))
        return cards


def tangent_plane(
    ra_deg: np.ndarray, dec_deg: np.ndarray, crval: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic projection about ``crval``: standard coordinates (ξ, η) in degrees."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    ra0, dec0 = math.radians(crval[0]), math.radians(crval[1])
    cos_c = math.sin(dec0) * np.sin(dec) + math.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = np.cos(dec) * np.sin(ra - ra0) / cos_c
        eta = (
            math.cos(dec0) * np.sin(dec) - math.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)
        ) / cos_c
    behind = cos_c <= 0
    xi, eta = np.where(behind, np.nan, xi), np.where(behind, np.nan, eta)
    return np.degrees(xi), np.degrees(eta)


def _deproject(
    xi_deg: np.ndarray, eta_deg: np.ndarray, crval: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    xi, eta = np.radians(xi_deg), np.radians(eta_deg)
    ra0, dec0 = math.radians(crval[0]), math.radians(crval[1])
    rho = np.hypot(xi, eta)
    c = np.arctan(rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        dec = np.arcsin(
            np.cos(c) * math.sin(dec0)
            + np.where(rho > 0, eta * np.sin(c) * math.cos(dec0) / rho, 0)
        )
        ra = ra0 + np.arctan2(
            xi * np.sin(c), rho * math.cos(dec0) * np.cos(c) - eta * math.sin(dec0) * np.sin(c)
        )
    return np.degrees(ra) % 360.0, np.degrees(dec)


def _terms(u: np.ndarray, v: np.ndarray, order: int, min_degree: int) -> list[tuple[int, int]]:
    return [
        (p, q)
        for p in range(order + 1)
        for q in range(order + 1 - p)
        if min_degree <= p + q <= order
    ]


def _poly(coeffs: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(u, v).shape)
    order = coeffs.shape[0] - 1
    for p in range(order + 1):
        for q in range(order + 1 - p):
            if coeffs[p, q]:
                out = out + coeffs[p, q] * u**p * v**q
    return out


def fit_tan_sip(
    x: np.ndarray,
    y: np.ndarray,
    ra_deg: np.ndarray,
    dec_deg: np.ndarray,
    shape: tuple[int, int],
    crval: tuple[float, float],
    *,
    sip_order: int = SIP_ORDER,
) -> TanSip:
    """Least-squares TAN-SIP fit of matched stars (pixels ↔ catalogue).

    Parameters
    ----------
    x, y : ndarray
        0-based pixel positions of the detected stars.
    ra_deg, dec_deg : ndarray
        Catalogue positions of the same stars.
    shape : tuple of int
        Image (rows, columns); the reference pixel is its centre.
    crval : tuple of float
        First guess of the tangent point (RA, Dec), degrees.
    sip_order : int
        SIP order; plain TAN (zero SIP terms) below :data:`MIN_STARS_FOR_SIP` stars.

    Returns
    -------
    TanSip
    """
    rows, cols = shape
    crpix = ((cols - 1) / 2.0, (rows - 1) / 2.0)
    u, v = np.asarray(x, float) - crpix[0], np.asarray(y, float) - crpix[1]
    order = sip_order if len(u) >= MIN_STARS_FOR_SIP else 1
    terms = _terms(u, v, max(order, 1), 0)
    design = np.column_stack([u**p * v**q for p, q in terms])
    centre = crval
    for _ in range(3):
        xi, eta = tangent_plane(np.asarray(ra_deg), np.asarray(dec_deg), centre)
        cx, *_ = np.linalg.lstsq(design, xi, rcond=None)
        cy, *_ = np.linalg.lstsq(design, eta, rcond=None)
        # move the tangent point to where the reference pixel lands
        ra_c, dec_c = _deproject(np.array([cx[0]]), np.array([cy[0]]), centre)
        centre = (float(ra_c[0]), float(dec_c[0]))
    lookup_x = dict(zip(terms, cx, strict=True))
    lookup_y = dict(zip(terms, cy, strict=True))
    cd = np.array([[lookup_x[(1, 0)], lookup_x[(0, 1)]], [lookup_y[(1, 0)], lookup_y[(0, 1)]]])
    size = max(SIP_ORDER, order) + 1
    a, b = np.zeros((size, size)), np.zeros((size, size))
    if order >= 2:
        inv = np.linalg.inv(cd)
        for p, q in terms:
            if p + q >= 2:
                a[p, q] = inv[0, 0] * lookup_x[(p, q)] + inv[0, 1] * lookup_y[(p, q)]
                b[p, q] = inv[1, 0] * lookup_x[(p, q)] + inv[1, 1] * lookup_y[(p, q)]
    ap, bp = _fit_inverse(a, b, shape, crpix, size - 1)
    return TanSip(centre, crpix, cd, a, b, ap, bp, shape)


def _fit_inverse(
    a: np.ndarray, b: np.ndarray, shape: tuple[int, int], crpix: tuple[float, float], order: int
) -> tuple[np.ndarray, np.ndarray]:
    """AP/BP so that (U, V) + AP/BP(U, V) = (u, v) where (U, V) = (u, v) + A/B(u, v)."""
    size = order + 1
    ap, bp = np.zeros((size, size)), np.zeros((size, size))
    if not (np.any(a) or np.any(b)):
        return ap, bp
    rows, cols = shape
    gu, gv = np.meshgrid(
        np.linspace(-crpix[0], cols - 1 - crpix[0], INVERSE_GRID),
        np.linspace(-crpix[1], rows - 1 - crpix[1], INVERSE_GRID),
    )
    u, v = gu.ravel(), gv.ravel()
    big_u, big_v = u + _poly(a, u, v), v + _poly(b, u, v)
    terms = _terms(big_u, big_v, order, 0)
    design = np.column_stack([big_u**p * big_v**q for p, q in terms])
    cu, *_ = np.linalg.lstsq(design, u - big_u, rcond=None)
    cv, *_ = np.linalg.lstsq(design, v - big_v, rcond=None)
    for (p, q), ca, cb in zip(terms, cu, cv, strict=True):
        ap[p, q], bp[p, q] = ca, cb
    return ap, bp


def position_angle_deg(cd: np.ndarray) -> float:
    """Position angle of the image +y axis on the sky, north through east, degrees."""
    return math.degrees(math.atan2(float(cd[0, 1]), float(cd[1, 1]))) % 360.0
