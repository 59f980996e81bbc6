"""TAN-SIP fitting and header cards, checked against astropy.wcs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from crowdsky.astrometry import wcs
from tests.support.sky_frames import true_wcs


def _grid(shape: tuple[int, int], n: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = shape
    gx, gy = np.meshgrid(np.linspace(0, cols - 1, n), np.linspace(0, rows - 1, n))
    return gx.ravel(), gy.ravel()


@pytest.mark.parametrize("rotation", [0.0, 37.0, 181.3, 300.0])
@pytest.mark.parametrize("mirrored", [True, False])
def test_parity_and_rotation_of_a_constructed_wcs(rotation: float, mirrored: bool) -> None:
    truth = true_wcs(120.0, 60.0, rotation, mirrored=mirrored)
    assert truth.rotation_deg == pytest.approx(rotation % 360.0, abs=1e-9)
    assert (truth.determinant > 0) == mirrored
    assert truth.scale_arcsec == pytest.approx(2.38)


def test_fit_recovers_a_distorted_wcs_and_astropy_reads_the_same() -> None:
    truth = true_wcs(359.9, 41.1, 23.0)  # RA wraps inside the field
    a = np.zeros((3, 3))
    b = np.zeros((3, 3))
    a[2, 0], a[0, 2], b[1, 1] = 2e-7, -1e-7, 1.5e-7
    distorted = wcs.TanSip(truth.crval, truth.crpix, truth.cd, a, b, a * 0, b * 0, truth.shape)
    x, y = _grid(truth.shape, 9)
    ra, dec = distorted.pixel_to_world(x, y)
    fit = wcs.fit_tan_sip(x, y, ra, dec, truth.shape, (0.2, 41.0))
    ra2, dec2 = fit.pixel_to_world(x, y)
    err = np.hypot((ra2 - ra + 180) % 360 - 180, dec2 - dec) * 3600
    assert err.max() < 1e-3  # arcsec
    assert fit.has_sip
    # the inverse polynomials bring the sky back to the pixels
    bx, by = fit.world_to_pixel(ra, dec)
    assert np.hypot(bx - x, by - y).max() < 0.01

    header = fits.Header()
    header["NAXIS"], header["NAXIS1"], header["NAXIS2"] = 2, truth.shape[1], truth.shape[0]
    for key, value, comment in fit.header_cards():
        header[key] = (value, comment)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reference = WCS(header)
    ra3, dec3 = reference.all_pix2world(x, y, 0)
    assert np.hypot((ra3 - ra + 180) % 360 - 180, dec3 - dec).max() * 3600 < 1e-3
    assert reference.sip is not None


def test_few_stars_fit_a_plain_tan() -> None:
    truth = true_wcs(10.0, -30.0, 90.0)
    x, y = _grid(truth.shape, 3)
    ra, dec = truth.pixel_to_world(x, y)
    fit = wcs.fit_tan_sip(x, y, ra, dec, truth.shape, (10.01, -30.02))
    assert not fit.has_sip
    assert fit.crval[0] == pytest.approx(10.0, abs=1e-7)
    assert fit.rotation_deg == pytest.approx(90.0, abs=1e-6)
