"""Band-wise combination with rejection: what ``combine_frames`` makes of known cubes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdsky.stacking import combine
from crowdsky.stacking.frame_store import FrameStore


def run(
    cube: np.ndarray,
    floor: float = 1.0,
    noise: np.ndarray | None = None,
    rule: combine.Rule = combine.Rule(),
) -> combine.CombineOutput:
    """Combine a mono cube in RAM, every frame equally weighted, no background."""
    n, rows, cols = cube.shape
    store = FrameStore(n, rows, cols, "ram-float32", cube.astype(np.float32))
    norm = combine.Normalisation(
        offsets=np.zeros((n, 1)), scales=np.ones(n), floor=np.array([floor]), noise=noise
    )
    return combine.combine_frames(store, 1, np.ones(n), norm, rule, band_budget_bytes=1 << 26)


def test_single_outlier_rejected_at_n5() -> None:
    rng = np.random.default_rng(0)
    cube = rng.normal(0, 1, (5, 40, 60))
    cube[2, 10:12, :] += 100.0  # a trail in one frame
    out = run(cube)
    assert np.abs(out.image[10:12]).max() < 3.0
    assert out.rejected_per_frame[2] >= 120


def test_two_coincident_outliers_rejected_at_n10() -> None:
    rng = np.random.default_rng(1)
    cube = rng.normal(0, 1, (10, 30, 30))
    cube[3, 5:8, 5:8] += 100.0
    cube[7, 5:8, 5:8] += 100.0
    out = run(cube)
    assert np.abs(out.image[5:8, 5:8]).max() < 3.0


def test_uncovered_pixels_are_excluded_not_filled() -> None:
    cube = np.ones((4, 10, 10))
    cube[0, :, :5] = np.nan
    cube[1:, :, 8:] = np.nan
    cube[:, :, 9] = np.nan
    out = run(cube)
    assert out.coverage[0, 0] == 3 and out.coverage[0, 5] == 4 and out.coverage[0, 8] == 1
    assert np.isnan(out.image[:, 9]).all()
    np.testing.assert_allclose(out.image[:, :9], 1.0)
    assert out.covered_per_frame.tolist() == [40, 80, 80, 80]


def test_weights_and_normalisation() -> None:
    cube = np.stack([np.full((4, 6), 10.0), np.full((4, 6), 20.0)])
    n, rows, cols = cube.shape
    store = FrameStore(n, rows, cols, "ram-float32", cube.astype(np.float32))
    out = combine.combine_frames(
        store,
        1,
        np.array([1.0, 3.0]),
        combine.Normalisation(
            offsets=np.array([[10.0], [0.0]]), scales=np.array([1.0, 0.5]), floor=np.array([100.0])
        ),
        combine.Rule(max_iterations=3),
        band_budget_bytes=1 << 20,
    )
    # frame 0 -> (10-10)*1 = 0, frame 1 -> (20-0)*0.5 = 10; weighted 0*1/4 + 10*3/4
    np.testing.assert_allclose(out.image, 7.5)


def test_large_n_uses_a_subset_and_still_rejects() -> None:
    rng = np.random.default_rng(2)
    cube = rng.normal(0, 1, (45, 12, 20))
    cube[[4, 20], 3, :] += 50.0
    out = run(cube)
    assert np.abs(out.image[3]).max() < 1.5
    clean = run(cube, rule=combine.Rule(reject=False))
    assert np.abs(clean.image[3]).min() > 1.0


def test_disk_store_matches_ram(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    cube = rng.normal(500, 10, (6, 50, 30)).astype(np.float32)
    cube[0, :3] = np.nan
    norm = combine.Normalisation(
        offsets=np.full((6, 1), 500.0), scales=np.ones(6), floor=np.array([10.0])
    )
    with FrameStore.create(6, 50, 30, budget_bytes=1000, scratch_dir=tmp_path) as disk:
        assert disk.kind == "disk-float16"
        for i in range(6):
            disk.put(i, cube[i])
        a = combine.combine_frames(
            disk, 1, np.ones(6), norm, combine.Rule(), band_budget_bytes=2000
        )
    assert a.n_bands > 1
    ram = FrameStore(6, 50, 30, "ram-float32", cube)
    b = combine.combine_frames(ram, 1, np.ones(6), norm, combine.Rule(), band_budget_bytes=1 << 20)
    # float16 moves values by < 0.25 ADU here; a borderline rejection may flip
    assert float(np.median(np.abs(a.image - b.image))) < 0.1
    np.testing.assert_array_equal(a.coverage, b.coverage)


def test_noisier_frame_judged_by_its_own_noise() -> None:
    """A frame that interpolation smoothed less is noisier than the others (such as
    the reference where it is not resampled: mono frames, demosaic='bilinear'); with
    every frame's noise given, its samples are not clipped more often than the others'."""
    rng = np.random.default_rng(7)
    n = 12
    sigma = np.full(n, 1.0)
    sigma[0] = 1.6
    cube = rng.normal(0.0, 1.0, (n, 200, 150)) * sigma[:, None, None]
    cube[5, 100, :] += 60.0  # an outlier row is still removed
    floor = float(np.sqrt(np.mean(sigma**2)))
    plain = run(cube, floor)
    fair = run(cube, floor, noise=sigma[:, None])
    rate_plain = plain.rejected_per_frame / plain.covered_per_frame
    rate_fair = fair.rejected_per_frame / fair.covered_per_frame
    assert rate_plain[0] > 5 * np.median(rate_plain[1:])
    assert rate_fair[0] < 2 * np.median(rate_fair[1:]) + 1e-3
    assert np.abs(fair.image[100]).max() < 3.0


def test_engine_works_where_no_kernel_cache_can_be_written() -> None:
    """A read-only install with no writable home: numba has no cache location and
    refuses cache=True; the kernels (combination, resampling) must then compile in
    memory (and say so)."""
    import subprocess
    import sys

    script = (
        "import numba.core.caching as caching\n"
        "caching.CacheImpl._locator_classes = []\n"
        "import numpy as np\n"
        "from crowdsky.stacking import combine\n"
        "from crowdsky.stacking.frame_store import FrameStore\n"
        "cube = np.ones((3, 2, 768), np.float32)\n"
        "store = FrameStore(3, 2, 768, 'ram-float32', cube)\n"
        "norm = combine.Normalisation(np.zeros((3, 3)), np.ones(3), np.ones(3))\n"
        "out = combine.combine_frames(store, 3, np.ones(3), norm, combine.Rule(max_iterations=1),"
        " band_budget_bytes=1 << 20)\n"
        "assert float(out.image.mean()) == 1.0\n"
        "from crowdsky.stacking import warp\n"
        "rgb = warp.warp_bayer(np.full((8, 8), 5, np.uint16), 'GRBG', np.eye(2, 3), (8, 8))\n"
        "assert np.allclose(rgb, 5.0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "compiling in memory" in proc.stderr


@pytest.mark.parametrize(("level", "spread"), [(300.0, 0.03), (300.0, 0.2), (3000.0, 0.03)])
def test_trail_over_bright_signal_rejected_with_frame_noise(level: float, spread: float) -> None:
    """Per-frame noise must widen each frame's own band, not rescale its samples: they
    still hold the signal (only the sky is subtracted), so rescaled samples of a star or
    nebula spread apart in proportion to the signal, inflated σ, and a trail over it
    survived (mean residual 0.5–2.5 σ of a frame here; 2.5 is the whole trail)."""
    rng = np.random.default_rng(11)
    n, rows, cols = 12, 40, 300
    sigma = 1.0 + spread * np.linspace(-1.0, 1.0, n)  # each frame's noise
    rng.shuffle(sigma)
    cube = rng.normal(0.0, 1.0, (n, rows, cols)) * sigma[:, None, None]
    cube[:, :, 100:200] += level  # a plateau level / σ above the sky
    cube[5, 20, :] += 30.0  # a 30σ trail in one frame, over sky and plateau
    floor = float(np.sqrt(np.mean(sigma**2)))
    out = run(cube, floor=floor, noise=sigma[:, None])
    combined = floor / np.sqrt(n - 1)  # σ of one combined pixel
    assert abs(float(np.mean(out.image[20, :100]))) < combined
    assert abs(float(np.mean(out.image[20, 100:200])) - level) < combined
    assert out.rejected_per_frame[5] >= 290  # the trail, over sky and plateau alike
    rate = out.rejected_per_frame / out.covered_per_frame
    assert np.delete(rate, 5).max() < 0.01  # the others: about the 0.3 % of a 3σ cut


def test_equal_noise_is_the_same_as_no_noise() -> None:
    rng = np.random.default_rng(12)
    cube = rng.normal(0.0, 1.0, (7, 30, 40))
    cube[:, :, 20:] += 500.0
    cube[2, 10, :] += 30.0
    cube[4, :, 35:] = np.nan
    plain = run(cube, floor=1.3)
    equal = run(cube, floor=1.3, noise=np.full((7, 1), 1.3))
    np.testing.assert_array_equal(plain.image, equal.image)
    np.testing.assert_array_equal(plain.rejected_per_frame, equal.rejected_per_frame)
