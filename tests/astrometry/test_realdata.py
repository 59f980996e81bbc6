"""Every stack of the 32 real M 94 frames solves (skipped when ../shared/data is absent)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from crowdsky.astrometry import PlateSolver, StackAstrometry, solve_stack_file
from crowdsky.stacking import stack_files
from tests.astrometry.test_stack_file import assert_valid_fits_and_wcs

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

S50_SCALE = 2.38
SUBSETS = {
    "first 15": slice(0, 15),
    "last 15": slice(17, 32),
    "every other 15": slice(1, 31, 2),
}


def _solve(frames: list[Path], out: Path, plate_solver: PlateSolver) -> StackAstrometry:
    stack_files(frames, out)
    found = solve_stack_file(out, plate_solver)
    assert found.solved, found.message
    assert found.rms_arcsec is not None and found.rms_arcsec <= 1.0
    assert found.scale_arcsec == pytest.approx(S50_SCALE, rel=0.005)
    assert found.mirrored is True
    assert found.n_matched >= 10
    assert found.zero_points is not None
    assert all(math.isfinite(v) for v in found.zero_points.values())
    assert found.sqm is not None and 15.0 < found.sqm < 23.0
    assert_valid_fits_and_wcs(out)
    with fits.open(out) as hdul:
        header = hdul[0].header
        mount = (header["RA_MNT"], header["DEC_MNT"])
    # the true centre is ~15′ from the mount's header position
    offset = math.hypot(
        (mount[0] - found.ra_deg) * math.cos(math.radians(41.1)), mount[1] - found.dec_deg
    )
    assert 0.15 < offset < 0.35
    return found


@pytest.fixture(scope="module")
def all_32(
    real_frames: list[Path], tmp_path_factory: pytest.TempPathFactory, plate_solver: PlateSolver
) -> Path:
    out = tmp_path_factory.mktemp("m94") / "all32.fits"
    _solve(real_frames, out, plate_solver)
    return out


def test_the_stack_of_all_32_solves(all_32: Path) -> None:
    with fits.open(all_32) as hdul:
        assert hdul[0].header["PLTSOLVD"] is True
        assert hdul[0].header["NCOMBINE"] == 32


@pytest.mark.parametrize("subset", list(SUBSETS))
def test_15_frame_stacks_solve_where_the_engine_put_them(
    real_frames: list[Path], tmp_path: Path, plate_solver: PlateSolver, all_32: Path, subset: str
) -> None:
    out = tmp_path / "m94_15.fits"
    found = _solve(real_frames[SUBSETS[subset]], out, plate_solver)
    # independent check: the subset's reference frame, carried through the 32-frame
    # stack's registration of it and that stack's WCS, lands on the same centre
    with fits.open(out) as mine, fits.open(all_32) as big:
        ref = mine["FRAMES"].data["FILENAME"][mine["FRAMES"].data["REFERENCE"]][0]
        rows = big["FRAMES"].data
        matrix = rows["TRANSFORM"][rows["FILENAME"] == ref][0].reshape(2, 3)
        shape = mine["RED"].data.shape
        big_wcs = WCS(big["RED"].header)
    centre = np.array([(shape[1] - 1) / 2, (shape[0] - 1) / 2])
    x, y = matrix[:, :2] @ centre + matrix[:, 2]
    ra, dec = big_wcs.all_pix2world(x, y, 0)
    dra = (float(ra) - found.ra_deg) * math.cos(math.radians(found.dec_deg))  # type: ignore[operator]
    assert math.hypot(dra, float(dec) - found.dec_deg) * 3600 < 2.0  # type: ignore[operator]


def test_the_colour_calibration_names_its_catalogue_and_stars(
    all_32: Path, tmp_path: Path, index_files: list[Path], colour_files: list[Path]
) -> None:
    copy = tmp_path / "colour.fits"
    copy.write_bytes(all_32.read_bytes())
    found = solve_stack_file(copy, PlateSolver(index_files, colour_files=colour_files))
    assert found.solved, found.message
    with fits.open(copy) as hdul:
        header, stars = hdul[0].header, hdul["STAR-TAB"].data
    assert header["COLCAT"].startswith("Stellarium")
    assert header["COLNSTAR"] == found.colour_stars
    paired = np.isfinite(stars["cat_bv"])
    assert paired.sum() >= 3  # Tycho-2 stars of the M 94 field brighter than V 10.5
    # the sparse M 94 field has too few unsaturated ones: refused, and says why
    assert header["COLCAL"] is False and "need" in header["COLMSG"]
    assert found.white_balance is None
