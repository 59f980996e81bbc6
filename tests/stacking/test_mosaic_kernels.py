"""The analysis kernels give exactly what the numpy paths they stand in for give."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from crowdsky.stacking import debayer, detect, io, kernels, mosaic_kernels


@pytest.fixture(scope="module", autouse=True)
def _loaded() -> None:
    mosaic_kernels.warm_up()  # from numba's cache, or compiled once
    assert kernels.loaded("mosaic_kernels") is mosaic_kernels


@contextlib.contextmanager
def numpy_path() -> Iterator[None]:
    """The callers' numpy code, as in the first stack of a process."""
    kernels._ready_modules.discard("mosaic_kernels")
    try:
        assert kernels.loaded("mosaic_kernels") is None
        yield
    finally:
        kernels.mark_ready("mosaic_kernels")


def _both(func, *args):  # type: ignore[no-untyped-def]
    fast = func(*args)
    with numpy_path():
        slow = func(*args)
    return fast, slow


def _sky(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mosaic = rng.normal(1500, 40, shape).clip(0, 65535).astype(np.uint16)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    for y, x, flux in rng.uniform((0, 0, 500), (shape[0], shape[1], 30000), (40, 3)):
        mosaic += (flux * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 2.5)).astype(np.uint16)
    return mosaic


def _hot_everywhere(mosaic: np.ndarray) -> np.ndarray:
    """Isolated hot pixels, hot pairs (side by side, diagonal), saturated ones, in
    the interior, on every edge and in every corner."""
    m = mosaic.copy()
    h, w = m.shape
    spots = [
        (0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1),  # corners
        (0, w // 2), (h - 1, w // 3), (h // 2, 0), (h // 3, w - 1),  # edges
        (1, 1), (h - 2, w - 2), (17, 23), (40, 41),  # inside
    ]  # fmt: skip
    for r, c in spots:
        m[r, c] = 60000
    for r, c in [(0, 10), (h - 1, 20), (30, 0), (31, w - 1), (50, 60)]:  # pairs
        m[r, c] = m[r, min(c + 1, w - 1)] = 45000
    for r, c in [(0, w - 2), (25, 1), (h - 2, 30)]:  # diagonal pairs, touching edges
        m[r, c] = m[min(r + 1, h - 1), c - 1] = 52000
    m[h // 2, w // 2] = 65535
    m[h // 2 + 10 : h // 2 + 12, w // 2 : w // 2 + 2] = 30000  # a 2×2 block: not hot
    return m


@pytest.mark.parametrize("shape", [(96, 128), (97, 131), (5, 5), (64, 6)])
def test_hot_pixels_and_luminance_match_the_numpy_path(shape: tuple[int, int]) -> None:
    mosaic = _hot_everywhere(_sky(shape, 3)) if min(shape) > 6 else _sky(shape, 4)
    for sigma in (8.0, 3.0, 0.5):
        (hot, values), (hot_np, values_np) = _both(debayer.find_hot_pixels, mosaic, sigma)
        np.testing.assert_array_equal(hot, hot_np)
        np.testing.assert_array_equal(values, values_np)
    if min(shape) > 6:
        assert hot.size >= 20  # the injected ones were found (sigma 0.5 finds more)
    fast, slow = _both(debayer.superpixel_luminance, mosaic)
    assert fast.dtype == slow.dtype == np.float32
    np.testing.assert_array_equal(fast, slow)


def test_a_frame_full_of_peaks_falls_back_to_the_median_path() -> None:
    rng = np.random.default_rng(5)
    mosaic = rng.integers(0, 2, (300, 300)).astype(np.uint16) * 60000  # half "peaks"
    (hot, values), (hot_np, values_np) = _both(debayer.find_hot_pixels, mosaic, 1.0)
    np.testing.assert_array_equal(hot, hot_np)
    np.testing.assert_array_equal(values, values_np)


@pytest.mark.parametrize("shape", [(540, 960), (271, 483)])
def test_binned_background_matches_the_numpy_path(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(6)
    image = rng.normal(6000, 80, shape).astype(np.float32)
    image[100:110, 200:210] += 5000
    fast, slow = _both(detect.measure_background, image, 64)
    fast_b = detect.measure_background(image, binned=True)
    with numpy_path():
        slow_b = detect.measure_background(image, binned=True)
    np.testing.assert_array_equal(fast.back, slow.back)
    np.testing.assert_array_equal(fast_b.back, slow_b.back)
    assert (fast_b.level, fast_b.rms) == (slow_b.level, slow_b.rms)


def test_sky_statistics_are_numpys() -> None:
    for shape in [(1920, 1080), (100, 99), (13, 13)]:  # odd and even sample sizes
        mosaic = _sky(shape, 7)
        sample = mosaic[::7, ::7].astype(np.float32)
        sky = float(np.median(sample))
        mad = float(np.median(np.abs(sample - sky)))
        assert mosaic_kernels.sky_statistics(mosaic, 7) == (sky, mad)


def test_decoding_matches_the_numpy_path(tmp_path: Path) -> None:
    from astropy.io import fits

    data = _hot_everywhere(_sky((64, 96), 8))
    data[0, :4] = [0, 1, 32767, 32768]
    path = tmp_path / "frame.fit"
    header = fits.Header()
    header["BAYERPAT"] = "GRBG"
    fits.PrimaryHDU(data, header).writeto(path)
    fast, slow = _both(io.read_frame, path)
    assert fast.kind == slow.kind == "bayer"
    np.testing.assert_array_equal(fast.data, data)
    np.testing.assert_array_equal(slow.data, data)


@pytest.mark.realdata
def test_real_frames_analyse_identically(real_frames: list[Path]) -> None:
    for path in real_frames[::8]:
        fast, slow = _both(io.read_frame, path)
        np.testing.assert_array_equal(fast.data, slow.data)
        (hot, values), (hot_np, values_np) = _both(debayer.find_hot_pixels, fast.data, 8.0)
        np.testing.assert_array_equal(hot, hot_np)
        np.testing.assert_array_equal(values, values_np)
        lum, lum_np = _both(debayer.superpixel_luminance, fast.data)
        np.testing.assert_array_equal(lum, lum_np)
        found, found_np = _both(
            lambda image: detect.find_stars(
                image, sigmas=(5.0, 3.0, 2.5), target_stars=40, binned_background=True
            ),
            lum,
        )
        assert found.stars.tobytes() == found_np.stars.tobytes()  # NaN FWHMs included
        assert (found.background, found.noise) == (found_np.background, found_np.noise)
