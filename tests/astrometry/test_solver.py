"""The solver on star lists made from the catalogue through a known WCS."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from crowdsky.astrometry import PlateSolver
from tests.support.sky_frames import S50_SHAPE, sky_stars, true_wcs

FIELDS = [
    # (RA, Dec, rotation): M 94, an alt-az field rotated far, a southern field
    (192.77, 41.12, 181.3),
    (83.8, -5.4, 37.0),
    (250.4, 36.46, 300.0),
]


def _star_list(
    catalogue_file: Path, truth: object, rng: np.random.Generator, n_extra: int = 80
) -> np.ndarray:
    stars = sky_stars(catalogue_file, truth, margin_px=-3.0)  # type: ignore[arg-type]
    xy = stars.xy + rng.normal(0.0, 0.15, stars.xy.shape)  # centroid noise
    rows, cols = S50_SHAPE
    extra = rng.uniform([0, 0], [cols, rows], size=(n_extra, 2))  # fainter field stars
    return np.vstack([xy[:60], extra, xy[60:]])


def _separation_arcsec(a: tuple[float, float], b: tuple[float, float]) -> float:
    dra = ((a[0] - b[0] + 180.0) % 360.0 - 180.0) * math.cos(math.radians(b[1]))
    return math.hypot(dra, a[1] - b[1]) * 3600.0


@pytest.mark.parametrize(("ra", "dec", "rotation"), FIELDS)
def test_solves_with_a_pointing_error_of_a_quarter_degree(
    plate_solver: PlateSolver, catalogue_file: Path, ra: float, dec: float, rotation: float
) -> None:
    truth = true_wcs(ra, dec, rotation)
    xy = _star_list(catalogue_file, truth, np.random.default_rng(1))
    hint = (ra + 0.2 / math.cos(math.radians(dec)), dec - 0.15)  # 15′ off
    found = plate_solver.solve(xy, S50_SHAPE, hint_deg=hint)
    assert found.solved, found.reason
    assert found.strategy == "hinted"
    fit = found.wcs
    assert fit is not None
    rows, cols = S50_SHAPE
    centre = fit.pixel_to_world(np.array([(cols - 1) / 2]), np.array([(rows - 1) / 2]))
    assert _separation_arcsec((float(centre[0][0]), float(centre[1][0])), (ra, dec)) < 2.0
    assert abs((fit.rotation_deg - rotation + 180) % 360 - 180) < 0.05
    assert fit.determinant > 0  # mirrored, as a Seestar
    assert fit.scale_arcsec == pytest.approx(2.38, rel=0.002)
    assert found.rms_arcsec < 1.0
    assert found.n_matched >= 8
    matched = found.star_cat_index >= 0
    assert np.all(np.isfinite(found.match_dist_arcsec[matched]))
    assert np.all(np.isnan(found.match_dist_arcsec[~matched]))


def test_a_wrong_hint_falls_back_to_a_blind_solve(
    plate_solver: PlateSolver, catalogue_file: Path
) -> None:
    truth = true_wcs(192.77, 41.12, 181.3)
    xy = _star_list(catalogue_file, truth, np.random.default_rng(2))
    found = plate_solver.solve(xy, S50_SHAPE, hint_deg=(30.0, -20.0))
    assert found.solved, found.reason
    assert found.strategy == "blind"
    assert [a.strategy for a in found.attempts] == ["hinted", "blind"]
    assert not found.attempts[0].found


def test_a_field_that_is_not_on_the_sky_is_not_solved(plate_solver: PlateSolver) -> None:
    rng = np.random.default_rng(3)
    rows, cols = S50_SHAPE
    xy = rng.uniform([0, 0], [cols, rows], size=(150, 2))
    found = plate_solver.solve(xy, S50_SHAPE, hint_deg=(192.77, 41.12))
    assert not found.solved
    assert found.wcs is None
    assert "no match" in found.reason or "refused" in found.reason
    assert np.all(found.star_cat_index == -1)


def test_too_few_stars_are_refused_before_solving(plate_solver: PlateSolver) -> None:
    found = plate_solver.solve(np.array([[10.0, 10.0], [500.0, 900.0]]), S50_SHAPE)
    assert not found.solved
    assert found.reason.startswith("only 2 stars")
    assert found.attempts == ()


def test_a_match_with_too_few_catalogue_stars_is_refused(
    plate_solver: PlateSolver, catalogue_file: Path
) -> None:
    # only the quad-forming brightest stars: astrometry.net may match, we refuse
    truth = true_wcs(192.77, 41.12, 181.3)
    xy = sky_stars(catalogue_file, truth, margin_px=-3.0).xy[:6]
    xy = np.vstack([xy, xy[:3] + 300.0])
    found = plate_solver.solve(xy, S50_SHAPE, hint_deg=(192.77, 41.12))
    assert not found.solved
    assert found.wcs is None


def test_concurrent_solves_in_one_process_are_safe(
    plate_solver: PlateSolver, catalogue_file: Path
) -> None:
    """A worker runs MAX_WORKERS jobs in threads: their solves must not collide."""
    from concurrent.futures import ThreadPoolExecutor

    lists = [
        _star_list(catalogue_file, true_wcs(ra, dec, rot), np.random.default_rng(i))
        for i, (ra, dec, rot) in enumerate(FIELDS)
    ]
    with ThreadPoolExecutor(3) as pool:
        found = list(pool.map(lambda xy: plate_solver.solve(xy, S50_SHAPE), lists * 2))
    assert all(f.solved for f in found), [f.reason for f in found]
