"""Solving whole stacks: simulated frames of the real sky (truth known), fields that
must not solve, and what the file looks like afterwards."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from crowdsky.astrometry import PlateSolver, mark_unsolved, solve_stack_file, star_json_path
from crowdsky.ingest.chunking import healpix_ring_pixel
from crowdsky.simulate import SequenceSpec, simulate_sequence
from crowdsky.stacking import stack_files
from crowdsky.stacking.detect import STAR_DTYPE
from crowdsky.stacking.io import write_stack
from tests.support.sky_frames import shifted, true_wcs, write_sky_frames

pytestmark = pytest.mark.slow

TRUE_ZP = 19.0
ROTATION = 37.5


def _separation_arcsec(a: tuple[float, float], b: tuple[float, float]) -> float:
    dra = ((a[0] - b[0] + 180.0) % 360.0 - 180.0) * math.cos(math.radians(b[1]))
    return math.hypot(dra, a[1] - b[1]) * 3600.0


def assert_valid_fits_and_wcs(path: Path) -> None:
    """fits verification passes; astropy reads the WCS of every image HDU silently."""
    with fits.open(path) as hdul:
        hdul.verify("exception")
        for hdu in hdul[1:]:
            if hdu.is_image:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    w = WCS(hdu.header)
                assert w.has_celestial and w.sip is not None
        # the header-only PRIMARY carries the same WCS; astropy only remarks on NAXIS = 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            primary = WCS(hdul[0].header, naxis=2)
        assert all("more axes" in str(w.message) for w in caught)
        assert primary.wcs.crval[0] == pytest.approx(hdul["RED"].header["CRVAL1"])


@pytest.fixture(scope="module")
def sky_stack(tmp_path_factory: pytest.TempPathFactory, catalogue_file: Path) -> dict:
    out = tmp_path_factory.mktemp("sky")
    truth = true_wcs(192.77, 41.12, ROTATION)
    shifts = [(0.0, 0.0), (2.5, -1.5), (-3.0, 2.0), (1.0, 3.5), (-1.5, -2.5), (3.0, 1.0)]
    paths = write_sky_frames(
        out / "raw", catalogue_file, truth, len(shifts), shifts_px=shifts, zero_point=TRUE_ZP
    )
    stack = out / "stack.fits"
    result = stack_files(paths, stack)
    ref = result.reference_index
    assert ref is not None
    return {"path": stack, "truth": shifted(truth, shifts[ref]), "result": result}


def test_a_simulated_stack_of_the_real_sky_solves_to_its_true_wcs(
    sky_stack: dict, plate_solver: PlateSolver
) -> None:
    path: Path = sky_stack["path"]
    truth = sky_stack["truth"]
    found = solve_stack_file(path, plate_solver)
    assert found.solved, found.message
    rows, cols = truth.shape
    true_centre = truth.pixel_to_world(np.array([(cols - 1) / 2]), np.array([(rows - 1) / 2]))
    true_ra, true_dec = float(true_centre[0][0]), float(true_centre[1][0])
    assert found.ra_deg is not None and found.dec_deg is not None
    assert _separation_arcsec((found.ra_deg, found.dec_deg), (true_ra, true_dec)) < 2.0
    assert abs((found.rotation_deg - ROTATION + 180) % 360 - 180) < 0.05  # type: ignore[operator]
    assert found.scale_arcsec == pytest.approx(2.38, rel=0.005)
    assert found.rms_arcsec is not None and found.rms_arcsec < 1.0
    assert found.mirrored is True
    assert found.healpix == healpix_ring_pixel(true_ra, true_dec, 128)
    assert found.healpix in found.healpix_pixels
    # the catalogue fluxes were made with TRUE_ZP on green through a white response
    assert found.zero_points is not None
    assert found.zero_points["GREEN"] == pytest.approx(TRUE_ZP, abs=0.1)
    assert found.zero_point_stars is not None and found.zero_point_stars["GREEN"] >= 5
    assert found.limiting_mag is not None and found.limiting_mag > 13.0
    assert_valid_fits_and_wcs(path)

    with fits.open(path) as hdul:
        primary = hdul[0].header
        assert primary["PLTSOLVD"] is True
        assert primary["PLTSCALE"] == pytest.approx(2.38, rel=0.005)
        assert primary["RA"] == pytest.approx(found.ra_deg, abs=1e-6)
        assert "RA_MNT" in primary and primary["HEALPIX"] == found.healpix
        assert primary["PHOTCAT"].startswith("Tycho-2")
        assert primary["ZPG"] == pytest.approx(found.zero_points["GREEN"], abs=1e-3)
        assert primary["CATMATCH"] >= primary["PLTNSTAR"]
        stars = hdul["STAR-TAB"].data
        w = WCS(hdul["GREEN"].header)
    matched = stars["matched"]
    assert matched.sum() >= 8
    assert np.all(stars["cat_id"][matched] > 0) and np.all(stars["cat_id"][~matched] == 0)
    assert np.all(np.isnan(stars["cat_mag"][~matched]))
    assert np.all(np.isnan(stars["match_dist_arcsec"][~matched]))
    assert np.all(stars["match_dist_arcsec"][matched] < 3.0)
    # STAR-TAB ra/dec is the header's WCS applied to x, y (0-based)
    ra, dec = w.all_pix2world(stars["x"], stars["y"], 0)
    assert np.allclose(ra, stars["ra"], atol=1e-6) and np.allclose(dec, stars["dec"], atol=1e-6)
    # every detected star lands on its true sky position
    tra, tdec = truth.pixel_to_world(stars["x"], stars["y"])
    assert np.median(np.hypot((tra - ra) * math.cos(math.radians(41.1)), tdec - dec)) * 3600 < 1

    body = json.loads(star_json_path(path).read_text())
    assert (body["width"], body["height"]) == (truth.shape[1], truth.shape[0])
    assert len(body["stars"]) == len(stars)
    first = body["stars"][0]
    assert {"x", "y", "flux", "a", "b", "flag", "peak", "ra", "dec"} <= set(first)

    # solving again gives the same answer and keeps the file valid
    again = solve_stack_file(path, plate_solver)
    assert again.ra_deg == pytest.approx(found.ra_deg, abs=1e-7)
    assert_valid_fits_and_wcs(path)


def test_a_stack_of_a_field_not_on_the_sky_says_why(
    tmp_path: Path, plate_solver: PlateSolver
) -> None:
    seq = simulate_sequence(tmp_path / "raw", SequenceSpec(n_frames=4, seed=5, shape=(960, 540)))
    stack = tmp_path / "random.fits"
    stack_files(seq.paths, stack)
    found = solve_stack_file(stack, plate_solver)
    assert not found.solved
    assert "no match" in found.message or "refused" in found.message
    with fits.open(stack) as hdul:
        hdul.verify("exception")
        assert hdul[0].header["PLTSOLVD"] is False
        assert hdul[0].header["PLTMSG"]
        assert "CTYPE1" not in hdul[0].header and "CTYPE1" not in hdul["RED"].header
        stars = hdul["STAR-TAB"].data
        assert np.all(np.isnan(stars["ra"])) and not stars["matched"].any()


def _stack_with_stars(path: Path, n_stars: int) -> None:
    rng = np.random.default_rng(4)
    header = fits.Header()
    header["RA"], header["DEC"], header["EXPTIME"], header["NCOMBINE"] = 192.7, 41.1, 100.0, 10
    image = rng.normal(1000.0, 5.0, (200, 120, 3)).astype(np.float32)
    stars = np.zeros(n_stars, dtype=STAR_DTYPE)
    stars["x"], stars["y"] = rng.uniform(5, 115, n_stars), rng.uniform(5, 195, n_stars)
    stars["flux"] = rng.uniform(100, 1000, n_stars)
    frames = {"INDEX": np.arange(1, dtype=np.int32)}
    write_stack(path, header, image, np.full((200, 120), 10, np.uint16), stars, frames)


@pytest.mark.parametrize(("n_stars", "words"), [(0, "only 0 stars"), (5, "only 5 stars")])
def test_empty_or_cloudy_stacks_are_delivered_unsolved_with_the_reason(
    tmp_path: Path, plate_solver: PlateSolver, n_stars: int, words: str
) -> None:
    path = tmp_path / "sparse.fits"
    _stack_with_stars(path, n_stars)
    found = solve_stack_file(path, plate_solver)
    assert not found.solved and found.message.startswith(words)
    with fits.open(path) as hdul:
        hdul.verify("exception")
        assert hdul[0].header["PLTSOLVD"] is False
        assert hdul[0].header["PLTMSG"].startswith(words)
        assert len(hdul["STAR-TAB"].data) == n_stars


def test_mark_unsolved_records_a_reason_without_a_solver(tmp_path: Path) -> None:
    path = tmp_path / "plain.fits"
    _stack_with_stars(path, 12)
    reason = "no plate solver: the astrometry package is not installed " + "x" * 40
    mark_unsolved(path, reason)
    with fits.open(path) as hdul:
        hdul.verify("exception")
        header = hdul[0].header
        assert header["PLTSOLVD"] is False
        assert reason.startswith(header["PLTMSG"])
        comments = "".join(str(c) for c in header["COMMENT"]).replace(" ", "")
        assert reason.replace(" ", "") in comments  # wrapped over several cards
        assert "cat_id" in hdul["STAR-TAB"].columns.names
