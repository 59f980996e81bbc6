"""Demosaicing: the R/B-swap guard, superpixels and hot-pixel suppression."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsky.stacking import InvalidInput, debayer

COLOUR = {"R": 1000, "G": 2000, "B": 3000}


def mosaic_of(pattern: str, shape: tuple[int, int] = (16, 20)) -> np.ndarray:
    """A uniform-colour mosaic laid out by a four-letter pattern (row 0 first)."""
    out = np.zeros(shape, dtype=np.uint16)
    for k, letter in enumerate(pattern):
        out[k // 2 :: 2, k % 2 :: 2] = COLOUR[letter]
    return out


@pytest.mark.parametrize("pattern", ["GRBG", "RGGB", "BGGR", "GBRG"])
def test_debayer_keeps_known_colours(pattern: str) -> None:
    rgb = debayer.debayer(mosaic_of(pattern), pattern)
    inner = rgb[2:-2, 2:-2]
    assert inner.dtype == np.float32
    np.testing.assert_allclose(inner[..., 0], COLOUR["R"])
    np.testing.assert_allclose(inner[..., 1], COLOUR["G"])
    np.testing.assert_allclose(inner[..., 2], COLOUR["B"])


def test_seestar_grbg_is_not_the_two_letter_gr_code() -> None:
    import cv2

    assert debayer.bayer_code("GRBG") == cv2.COLOR_BayerGB2RGB
    assert debayer.bayer_code("grbg ") == cv2.COLOR_BayerGRBG2RGB
    swapped = cv2.cvtColor(mosaic_of("GRBG"), cv2.COLOR_BayerGR2RGB)[4, 4]
    assert swapped[0] == COLOUR["B"]  # the pitfall the four-letter code avoids


@pytest.mark.parametrize("pattern", ["GR", "XYZW", ""])
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidInput):
        debayer.bayer_code(pattern)


def test_superpixel_sums_each_cell() -> None:
    lum = debayer.superpixel_luminance(mosaic_of("GRBG"))
    assert lum.shape == (8, 10)
    np.testing.assert_allclose(lum, 1000 + 2 * 2000 + 3000)


def test_hot_pixels_removed_stars_kept() -> None:
    rng = np.random.default_rng(3)
    img = rng.normal(900, 20, (64, 64)).clip(0).astype(np.uint16)
    yy, xx = np.mgrid[0:64, 0:64]
    star = 8000 * np.exp(-((xx - 40.3) ** 2 + (yy - 20.6) ** 2) / (2 * 1.2**2))
    img = (img + star).astype(np.uint16)
    img[10, 10] = 60000
    img[50, 31] = 30000
    before = img.copy()
    n = debayer.suppress_hot_pixels(img, 8.0)
    assert n == 2
    assert img[10, 10] < 1100 and img[50, 31] < 1100
    np.testing.assert_array_equal(img[15:26, 35:46], before[15:26, 35:46])


def test_sharp_bright_star_cores_on_a_bayer_mosaic_are_kept() -> None:
    """Real S50 star cores (M 94 frames): sharp, and their red and blue neighbours
    are weak, so the 3×3 median is far below the peak. A test against the median
    flattened them; they are stars because their brightest neighbours are bright.
    The third core stands far above its second-brightest neighbour too, like a hot
    pair, but its brightest neighbour does not: it is kept."""
    cores = [
        [
            [1201, 1969, 1578, 2142, 1134],
            [1678, 3623, 8142, 4180, 2170],
            [1162, 3130, 5351, 14551, 3438],
            [1588, 2129, 4135, 4218, 3556],
            [926, 1620, 1332, 2142, 1118],
        ],
        [
            [1674, 2212, 3898, 2743, 1959],
            [1703, 2378, 12433, 5924, 3562],
            [2385, 4769, 13546, 23748, 6020],
            [1927, 1438, 7143, 5313, 4558],
            [1380, 1911, 2868, 2897, 2254],
        ],
        [  # faint: the core is 4.7 times its second-brightest neighbour's excess
            [1178, 1034, 958, 999, 1098],
            [775, 1162, 1342, 1194, 791],
            [1063, 1249, 2938, 1268, 986],
            [887, 1310, 1284, 1966, 999],
            [1009, 922, 1294, 1044, 1025],
        ],
    ]
    rng = np.random.default_rng(5)
    img = rng.normal(950, 100, (40, 40)).clip(0).astype(np.uint16)
    img[5:10, 5:10] = cores[0]
    img[25:30, 20:25] = cores[1]
    img[5:10, 28:33] = cores[2]
    img[33, 8] = 15201  # an isolated hot pixel
    before = img.copy()
    assert debayer.suppress_hot_pixels(img, 8.0) == 1
    assert img[33, 8] < 1400
    np.testing.assert_array_equal(img[5:10, 5:10], before[5:10, 5:10])
    np.testing.assert_array_equal(img[25:30, 20:25], before[25:30, 20:25])
    np.testing.assert_array_equal(img[5:10, 28:33], before[5:10, 28:33])


def bayer_star(
    shape: tuple[int, int], centre: tuple[float, float], fwhm: float, peak: float
) -> np.ndarray:
    """A Gaussian star on a GRBG mosaic whose red and blue sites see 0.3 of green
    (weaker than real S50 stars: about 0.85 and 0.6)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    gain = np.where((yy + xx) % 2 == 0, 1.0, 0.3)
    s = fwhm / 2.3548
    return gain * peak * np.exp(-((xx - centre[1]) ** 2 + (yy - centre[0]) ** 2) / (2 * s**2))


def test_hot_pairs_removed_sharp_bayer_stars_kept() -> None:
    """Two hot pixels side by side (or a two-pixel cosmic ray) must not protect each
    other, and two of one colour two pixels apart must not enter each other's
    replacement; a sharp star on a Bayer mosaic, whose core may look like a diagonal
    pair of green sites, must stay intact."""
    rng = np.random.default_rng(7)
    img = rng.normal(900, 20, (80, 80))
    stars = [  # centre, FWHM: between two green sites, near one, on a red site, on a green site
        ((20.5, 20.5), 2.0),
        ((20.3, 60.2), 2.0),
        ((61.0, 20.0), 2.0),
        ((60.0, 60.0), 2.2),
    ]
    for centre, fwhm in stars:
        img += bayer_star(img.shape, centre, fwhm, 30000)
    img = img.clip(0, 65535).astype(np.uint16)
    pairs = {
        "horizontal": [((40, 10), 12000), ((40, 11), 9000)],
        "vertical": [((8, 40), 30000), ((9, 40), 30000)],
        "diagonal": [((40, 70), 20000), ((41, 71), 6000)],
        "anti-diagonal": [((72, 41), 5000), ((73, 40), 40000)],
        "single": [((40, 40), 60000)],
        "same colour, 2 px apart": [((10, 70), 50000), ((10, 72), 50000)],
    }
    for members in pairs.values():
        for (r, c), value in members:
            img[r, c] = value
    before = img.copy()
    n = debayer.suppress_hot_pixels(img, 8.0)
    for name, members in pairs.items():
        for (r, c), _ in members:
            assert 800 < img[r, c] < 1000, (name, (r, c), img[r, c])
    assert n == 11
    for (cy, cx), _ in stars:
        r, c = int(cy), int(cx)
        window = (slice(r - 4, r + 5), slice(c - 4, c + 5))
        np.testing.assert_array_equal(img[window], before[window])
