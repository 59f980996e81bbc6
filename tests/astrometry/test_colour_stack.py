"""Colour calibration end to end: a stack rendered with a known camera colour response
of real stars (Stellarium's B−V) gets the white balance that makes a G2V star neutral."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from crowdsky.astrometry import PlateSolver, solve_stack_file
from crowdsky.astrometry.colour_balance import SOLAR_B_V, _nearest
from crowdsky.astrometry.colours import ColourCatalogue
from crowdsky.simulate.sensor import SensorModel
from crowdsky.stacking import stack_files
from tests.support.sky_frames import sky_stars, true_wcs, write_sky_frames

pytestmark = pytest.mark.slow  # renders and stacks 3 full-size frames (~4 s)

FIELD = (83.8, -5.4, 37.0)  # Orion: ~40 Stellarium stars in an S50 field
RED = (0.30, -0.50)  # injected m_R - m_G = offset + slope (B-V), on top of the CFA
BLUE = (-0.25, 0.80)


def test_a_known_colour_response_is_calibrated_out(
    tmp_path: Path, index_files: list[Path], catalogue_file: Path, colour_files: list[Path]
) -> None:
    truth = true_wcs(*FIELD)
    stars = sky_stars(catalogue_file, truth)
    ra, dec = truth.pixel_to_world(stars.xy[:, 0], stars.xy[:, 1])
    colours = ColourCatalogue(colour_files).cone(FIELD[0], FIELD[1], 1.0)
    nearest, dist = _nearest(ra, dec, colours.ra_deg, colours.dec_deg)
    b_v = np.where(dist < 2.0, colours.b_v[nearest], SOLAR_B_V)
    rgb = np.column_stack(
        [
            10 ** (-0.4 * (RED[0] + RED[1] * b_v)),
            np.ones(len(b_v)),
            10 ** (-0.4 * (BLUE[0] + BLUE[1] * b_v)),
        ]
    )
    frames = write_sky_frames(
        tmp_path / "raw",
        catalogue_file,
        truth,
        3,
        shifts_px=[(0, 0), (2.5, -1.5), (-3, 2)],
        stars_rgb=rgb,
    )
    stack = tmp_path / "stack.fits"
    stack_files(frames, stack)
    found = solve_stack_file(stack, PlateSolver(index_files, colour_files=colour_files))
    assert found.solved, found.message
    assert found.white_balance is not None, found.colour_message
    assert found.colour_stars >= 15
    cfa_r, _, cfa_b = SensorModel().cfa_response
    expected_r = 10 ** (0.4 * (RED[0] + RED[1] * SOLAR_B_V)) / cfa_r
    expected_b = 10 ** (0.4 * (BLUE[0] + BLUE[1] * SOLAR_B_V)) / cfa_b
    assert found.white_balance["RED"] == pytest.approx(expected_r, rel=0.03)
    assert found.white_balance["BLUE"] == pytest.approx(expected_b, rel=0.03)
    with fits.open(stack) as hdul:
        header = hdul[0].header
        assert header["COLCAL"] is True and header["WBG"] == 1.0
        assert header["COLNSTAR"] == found.colour_stars
        assert header["COLSLR"] == pytest.approx(RED[1], abs=0.05)
        assert header["COLSLB"] == pytest.approx(BLUE[1], abs=0.05)
        assert np.isfinite(hdul["STAR-TAB"].data["cat_bv"]).sum() >= found.colour_stars
