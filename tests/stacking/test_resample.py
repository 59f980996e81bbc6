"""The separable resampler of Bayer lattices against OpenCV and against the truth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from crowdsky.stacking import debayer, resample, warp

RNG = np.random.default_rng(3)
STARS = np.column_stack(
    [RNG.uniform(0, 160, 60), RNG.uniform(0, 120, 60), RNG.uniform(200.0, 5000.0, 60)]
)


def scene(x: np.ndarray, y: np.ndarray, sigma: float = 1.3) -> np.ndarray:
    """Sky of 500 ADU with undersampled Gaussian stars, at positions (x, y)."""
    out = np.full(x.shape, 500.0)
    for sx, sy, flux in STARS:
        out += flux * np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / (2 * sigma**2))
    return out


def transform(angle_deg: float, dx: float, dy: float, scale: float = 1.0) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    c, s = scale * np.cos(a), scale * np.sin(a)
    return np.array([[c, -s, dx], [s, c, dy]])


def separable(
    mosaic: np.ndarray, matrix: np.ndarray, pattern: str = "GRBG", kernel: str = "cubic"
) -> np.ndarray:
    """The separable resampler's result for one kernel."""
    rows, cols = mosaic.shape
    sites = debayer.bayer_sites(pattern)
    order = [sites["R"][0], sites["G"][0], sites["G"][1], sites["B"][0]]
    fast = np.empty((rows, cols, 3), np.float32)
    work = np.empty((4, (rows + 1) // 2, cols), np.float32)
    inverse = cv2.invertAffineTransform(matrix)
    assert resample.supported(inverse)
    resample.warp_lattices(mosaic, order, inverse, fast, work, kernel)
    return fast


def truth_at_outputs(matrix: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """The analytic scene (star σ in px) at the mosaic positions of the output pixels."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    inverse = cv2.invertAffineTransform(matrix)
    return scene(
        inverse[0, 0] * xx + inverse[0, 1] * yy + inverse[0, 2],
        inverse[1, 0] * xx + inverse[1, 1] * yy + inverse[1, 2],
        sigma,
    )


def fast_and_opencv(
    mosaic: np.ndarray, matrix: np.ndarray, pattern: str = "GRBG"
) -> tuple[np.ndarray, np.ndarray]:
    """The resampler's result and OpenCV's per-site warp of the same mosaic."""
    rows, cols = mosaic.shape
    fast = separable(mosaic, matrix, pattern)
    # OpenCV's path: what warp_bayer runs outside the resampler's domain
    slow = warp._warp_bayer_opencv(
        mosaic,
        debayer.bayer_sites(pattern),
        matrix,
        (rows, cols),
        "cubic",
        np.empty_like(fast),
        None,
    )
    return fast, slow


@pytest.mark.parametrize("angle", [0.0, 0.4, -2.0])
def test_matches_opencv_and_its_footprint(angle: float) -> None:
    yy, xx = np.mgrid[0:120, 0:160].astype(float)
    mosaic = scene(xx, yy).astype(np.float32)
    fast, slow = fast_and_opencv(mosaic, transform(angle, 3.37, -2.61, 1.0002))
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
    both = np.isfinite(fast)
    assert both.mean() > 0.8
    diff = np.abs(fast - slow)[both]
    # OpenCV rounds positions to 1/32 pixel; two 1-D passes equal the 2-D kernel
    # exactly for a shift and closely for a small rotation
    assert np.sqrt(np.mean(diff**2)) < (0.5 if angle == 0.0 else 3.0)


@pytest.mark.parametrize("angle", [0.0, 1.0, 5.0, 9.5])
def test_as_accurate_as_a_two_dimensional_kernel(angle: float) -> None:
    """Against the analytic scene at the output positions, inside the frame."""
    yy, xx = np.mgrid[0:120, 0:160].astype(float)
    mosaic = scene(xx, yy).astype(np.float32)
    matrix = transform(angle, -4.2, 1.7)
    fast, slow = fast_and_opencv(mosaic, matrix)
    truth = truth_at_outputs(matrix, mosaic.shape, 1.3)
    inner = np.zeros(truth.shape, bool)
    inner[15:-15, 15:-15] = True
    for c in range(3):
        ok = inner & np.isfinite(fast[..., c])  # (the two footprints are equal)
        err_fast = np.sqrt(np.mean((fast[..., c][ok] - truth[ok]) ** 2))
        err_slow = np.sqrt(np.mean((slow[..., c][ok] - truth[ok]) ** 2))
        assert err_fast <= 1.05 * err_slow  # measured: equal to 2°, +3 % at 10°


@pytest.mark.parametrize("kernel", resample.KERNELS)
@pytest.mark.parametrize("pattern", ["GRBG", "RGGB", "BGGR", "GBRG"])
@pytest.mark.parametrize("shape", [(40, 60), (41, 61), (41, 60)])
def test_odd_shapes_and_every_pattern(kernel: str, pattern: str, shape: tuple[int, int]) -> None:
    """Odd sizes give lattices of different sizes; a flat colour must survive."""
    mosaic = np.zeros(shape, np.uint16)
    for k, letter in enumerate(pattern):
        mosaic[k // 2 :: 2, k % 2 :: 2] = {"R": 1000, "G": 2000, "B": 3000}[letter]
    matrix = transform(0.7, 1.3, -0.4)
    _, slow = fast_and_opencv(mosaic, matrix, pattern)
    fast = separable(mosaic, matrix, pattern, kernel)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
    inner = fast[3:-3, 3:-3]
    for c, value in enumerate((1000.0, 2000.0, 3000.0)):
        np.testing.assert_allclose(inner[..., c][np.isfinite(inner[..., c])], value, rtol=1e-5)


@pytest.mark.parametrize("kernel", resample.KERNELS)
def test_uint16_and_float32_mosaics_agree(kernel: str) -> None:
    mosaic = RNG.integers(0, 60000, (50, 70)).astype(np.uint16)
    a = separable(mosaic, transform(0.3, 2.5, 1.5), kernel=kernel)
    b = separable(mosaic.astype(np.float32), transform(0.3, 2.5, 1.5), kernel=kernel)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("matrix", "inside"),
    [
        (transform(9.0, 5.0, 5.0), True),
        (transform(12.0, 5.0, 5.0), False),  # large rotation: OpenCV warps it
        (transform(0.0, 0.0, 0.0, 1.5), False),
        (np.array([[-1.0, 0.0, 50.0], [0.0, 1.0, 0.0]]), False),  # mirrored
    ],
)
def test_domain(matrix: np.ndarray, inside: bool) -> None:
    assert resample.supported(cv2.invertAffineTransform(matrix)) is inside


def test_warp_bayer_uses_opencv_outside_the_domain() -> None:
    yy, xx = np.mgrid[0:80, 0:100].astype(float)
    mosaic = scene(xx, yy).astype(np.float32)
    matrix = transform(25.0, 20.0, -10.0)
    out = warp.warp_bayer(mosaic, "GRBG", matrix, (80, 100), "cubic")
    sites = debayer.bayer_sites("GRBG")
    ref = warp._warp_bayer_opencv(
        mosaic, sites, matrix, (80, 100), "cubic", np.empty((80, 100, 3), np.float32), None
    )
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize(("dx", "dy"), [(61.3, -44.8), (-150.0, 2.0), (400.0, 400.0)])
def test_far_shifts_keep_the_footprint(dx: float, dy: float) -> None:
    """Half the frame, a sliver of it, or none of it on the reference grid."""
    yy, xx = np.mgrid[0:120, 0:160].astype(float)
    mosaic = scene(xx, yy).astype(np.float32)
    fast, slow = fast_and_opencv(mosaic, transform(2.0, dx, dy))
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
    both = np.isfinite(fast)
    if both.any():
        assert np.sqrt(np.mean((fast - slow)[both] ** 2)) < 3.0


@pytest.mark.parametrize("angle", [0.0, 1.0, 5.0, 9.5])
@pytest.mark.parametrize("sigma", [1.3, 2.0])
def test_lanczos3_is_closer_to_the_truth_than_the_cubic(angle: float, sigma: float) -> None:
    """Same analytic scene; the sharper kernel interpolates it better, same footprint."""
    yy, xx = np.mgrid[0:120, 0:160].astype(float)
    mosaic = scene(xx, yy, sigma).astype(np.float32)
    matrix = transform(angle, -4.2, 1.7)
    cubic = separable(mosaic, matrix)
    lanczos = separable(mosaic, matrix, kernel="lanczos3")
    np.testing.assert_array_equal(np.isnan(lanczos), np.isnan(cubic))
    truth = truth_at_outputs(matrix, mosaic.shape, sigma)
    inner = np.zeros(truth.shape, bool)
    inner[15:-15, 15:-15] = True
    for c in range(3):
        ok = inner & np.isfinite(lanczos[..., c])
        err_l = np.sqrt(np.mean((lanczos[..., c][ok] - truth[ok]) ** 2))
        err_c = np.sqrt(np.mean((cubic[..., c][ok] - truth[ok]) ** 2))
        assert err_l < 0.9 * err_c


def test_lanczos3_at_whole_lattice_shifts_returns_the_samples() -> None:
    """A shift by whole lattice pixels (2 mosaic pixels) lands on samples: no blur."""
    mosaic = RNG.integers(0, 60000, (40, 60)).astype(np.uint16)
    out = separable(mosaic, transform(0.0, 2.0, -4.0), kernel="lanczos3")
    # output (x, y) = mosaic (x − 2, y + 4): red of GRBG sits at odd columns, even rows
    red = out[0:-4:2, 3::2, 0]
    # within 10⁻⁶ px of a sample (the weights divide by the distance): ≤ 0.25 ADU of 60,000
    np.testing.assert_allclose(red, mosaic[4::2, 1:-2:2], rtol=0, atol=0.25)
