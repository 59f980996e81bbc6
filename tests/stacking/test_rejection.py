"""The rejection kernel on its own: the sorting network and one slice of rows."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsky.stacking import rejection


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 15, 16, 17, 31, 32])
def test_sorting_network_sorts(n: int) -> None:
    comps = rejection.sorting_network(n)
    rng = np.random.default_rng(n)
    for _ in range(50):
        x = rng.normal(size=n)
        for a, b in comps:
            if x[a] > x[b]:
                x[a], x[b] = x[b], x[a]
        assert np.all(np.diff(x) >= 0)


def combine(band: np.ndarray, row_begin: int, row_end: int, **mode: object) -> rejection.Totals:
    """Run the kernel on a mono band: no background, unit scales, gains and weights."""
    n, _, cols = band.shape
    chunk = rejection.COLUMN_CHUNK
    frames = rejection.FrameTerms(
        offsets=np.zeros((n, chunk), np.float32),
        scales=np.ones(n, np.float32),
        gains=np.ones((n, chunk), np.float32),
        weights=np.ones(n),
    )
    estimator = rejection.Estimator(
        subset=np.arange(n, dtype=np.int64),
        comps=rejection.sorting_network(n),
        floor=np.ones(1),
        floor_pattern=np.ones(chunk),
    )
    settings: dict[str, object] = dict(
        kappa_low=3.0, kappa_high=3.0, max_iterations=5, use_median=False, reject=True
    )
    settings.update(mode)
    rows = row_end - row_begin
    totals = rejection.Totals(
        out=np.empty((rows, cols), np.float32),
        coverage=np.empty((rows, cols), np.uint16),
        rejected=np.zeros((rows, n), np.int64),
        covered=np.zeros((rows, n), np.int64),
    )
    kernel_mode = rejection.Mode(whiten=False, **settings)  # type: ignore[arg-type]
    rejection.combine_rows(band, row_begin, row_end, frames, estimator, kernel_mode, totals)
    return totals


def test_rows_of_the_slice_only_and_an_outlier_rejected() -> None:
    rng = np.random.default_rng(0)
    # noise well below the floor of 1: only the outlier is outside median ± 3σ
    band = rng.normal(0.0, 0.1, (7, 6, 1000)).astype(np.float32)  # more than one chunk
    band[4, 3, 900] = 80.0
    totals = combine(band, 2, 5)
    assert totals.out.shape == (3, 1000)
    assert totals.rejected[1, 4] == 1 and totals.rejected.sum() == 1
    kept = np.delete(band[:, 3, 900], 4)
    assert totals.out[1, 900] == pytest.approx(kept.mean(), abs=1e-5)
    assert (totals.coverage == 7).all() and (totals.covered == 1000).all()


def test_two_samples_that_disagree_keep_the_lower() -> None:
    band = np.zeros((2, 1, 3), np.float32)
    band[1, 0, 1] = 50.0  # a trail in one of two frames
    band[1, 0, 2] = 1.0  # within κ√2·floor: both kept
    totals = combine(band, 0, 1)
    np.testing.assert_array_equal(totals.out[0], [0.0, 0.0, 0.5])
    assert totals.rejected[0].tolist() == [0, 1]


def test_uncovered_samples_are_not_counted_and_nothing_covering_is_nan() -> None:
    band = np.ones((3, 1, 4), np.float32)
    band[0, 0, 1] = np.nan
    band[:, 0, 3] = np.nan
    totals = combine(band, 0, 1, use_median=True)
    assert totals.coverage[0].tolist() == [3, 2, 3, 0]
    np.testing.assert_array_equal(totals.out[0, :3], 1.0)
    assert np.isnan(totals.out[0, 3])
    assert totals.covered[0].tolist() == [2, 3, 3]
