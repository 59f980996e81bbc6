"""Resampling: Bayer mosaics straight to RGB, coverage, and the final low-pass."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsky.stacking import InvalidInput, warp

COLOUR = {"R": 1000.0, "G": 2000.0, "B": 3000.0}
SHAPE = (40, 60)


def mosaic_of(pattern: str, values: dict[str, np.ndarray]) -> np.ndarray:
    """A float32 mosaic sampling per-colour images at the sites ``pattern`` gives them."""
    out = np.zeros(SHAPE, dtype=np.float32)
    for k, letter in enumerate(pattern):
        out[k // 2 :: 2, k % 2 :: 2] = values[letter][k // 2 :: 2, k % 2 :: 2]
    return out


def shift(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])


@pytest.mark.parametrize("pattern", ["GRBG", "RGGB", "BGGR", "GBRG"])
@pytest.mark.parametrize("interpolation", ["lanczos3", "cubic", "linear", "cubic-linear"])
def test_uniform_colours_survive_any_shift(pattern: str, interpolation: str) -> None:
    flat = {k: np.full(SHAPE, v, dtype=np.float32) for k, v in COLOUR.items()}
    mosaic = mosaic_of(pattern, flat).astype(np.uint16)
    out = warp.warp_bayer(mosaic, pattern, shift(0.37, -0.61), SHAPE, interpolation)
    inner = out[4:-4, 4:-4]
    for c, letter in enumerate("RGB"):
        np.testing.assert_allclose(inner[..., c], COLOUR[letter], rtol=1e-5)


def test_each_colour_is_interpolated_from_its_own_sites() -> None:
    """Bilinear interpolation reproduces a linear ramp (to OpenCV's 1/32-pixel
    position steps), so every channel of the shifted mosaic must equal the shifted
    ramp: a colour taken from a neighbour's site would be off by a whole ramp step."""
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]].astype(np.float32)
    ramps = {"R": 100 + 3 * xx + 2 * yy, "G": 500 + 5 * xx - yy, "B": 900 - 2 * xx + 4 * yy}
    mosaic = mosaic_of("GRBG", ramps)
    dx, dy = 2.3, -1.4
    out = warp.warp_bayer(mosaic, "GRBG", shift(dx, dy), SHAPE, "linear")
    src_x, src_y = xx - dx, yy - dy  # reference pixel (x, y) comes from frame (x - dx, y - dy)
    expected = {"R": 100 + 3 * src_x + 2 * src_y, "G": 500 + 5 * src_x - src_y}
    expected["B"] = 900 - 2 * src_x + 4 * src_y
    inner = (slice(6, -6), slice(6, -6))
    for c, letter in enumerate("RGB"):
        np.testing.assert_allclose(out[..., c][inner], expected[letter][inner], atol=0.25)


def test_coverage_is_the_frames_own_footprint() -> None:
    mosaic = np.full(SHAPE, 1000, dtype=np.uint16)
    out = warp.warp_bayer(mosaic, "GRBG", shift(10.0, -5.0), SHAPE, "cubic")
    uncovered = np.isnan(out).any(axis=2)
    assert uncovered[:, :10].all() and uncovered[-5:, :].all()
    assert not uncovered[:-5, 10:].any()  # no lost strip along the frame's edges
    np.testing.assert_allclose(out[:-5, 10:], 1000.0)


def test_rejects_a_non_mosaic() -> None:
    with pytest.raises(InvalidInput):
        warp.warp_bayer(np.zeros((4, 4, 3), np.uint16), "GRBG", shift(0, 0), (4, 4))
    with pytest.raises(InvalidInput):
        warp.warp_bayer(np.zeros((4, 4), np.uint16), "RGBX", shift(0, 0), (4, 4))


def test_low_pass_keeps_flux_and_leaves_uncovered_pixels_alone() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 10.0, (50, 70, 3)).astype(np.float32)
    image[20, 30] += 5000.0  # a point source
    image[:, :8] = np.nan
    before = image.copy()
    warp.low_pass(image, 0.5)
    assert np.isnan(image[:, :8]).all() and np.isfinite(image[:, 8:]).all()
    # flux of the point source is kept; noise goes down
    box = (slice(15, 26), slice(25, 36))
    assert np.nansum(image[box]) == pytest.approx(np.nansum(before[box]), rel=1e-3)
    assert image[30:, 40:].std() < 0.8 * before[30:, 40:].std()
    # next to the uncovered area: an average of covered pixels only, no NaN and no dip
    flat = np.full((20, 20), 7.0, dtype=np.float32)
    flat[:, :5] = np.nan
    warp.low_pass(flat, 0.7)
    np.testing.assert_allclose(flat[:, 5:], 7.0, rtol=1e-6)


def test_low_pass_zero_is_identity() -> None:
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert warp.low_pass(image, 0.0) is image
    np.testing.assert_array_equal(image, np.arange(12, dtype=np.float32).reshape(3, 4))
