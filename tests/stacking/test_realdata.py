"""The engine on the 32 real Seestar S50 frames of M 94 (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from crowdsky.stacking import debayer, detect, io, stack_files
from tests.stacking.conftest import robust_background_std

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def lum_stars(lum: np.ndarray, mask: np.ndarray | None = None) -> int:
    found = detect.find_stars(
        np.ascontiguousarray(lum, dtype=np.float32),
        sigmas=(5.0,),
        minarea=5,
        max_stars=100000,
        mask=mask,
    )
    return int(found.stars.size)


def test_all_32_align_and_the_stack_beats_every_frame(
    real_frames: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "m94.fits"
    result = stack_files(real_frames, out)
    assert result.n_frames_input == 32
    assert result.n_aligned == 32, [f.reason for f in result.frames if not f.accepted]
    assert all(f.residual_px is not None and f.residual_px < 0.6 for f in result.frames)
    assert result.total_exptime == pytest.approx(320.0)
    with fits.open(out) as hdul:
        hdul.verify("exception")
        rgb = np.stack([hdul[n].data for n in ("RED", "GREEN", "BLUE")], axis=-1)
        footprint = hdul["FOOTPRINT"].data
    # NaN exactly where FOOTPRINT is 0 (it once missed 2 pixels at row 1919, columns
    # 0-1, where a colour's sites fell outside every frame but one)
    for channel in range(3):
        np.testing.assert_array_equal(np.isnan(rgb[..., channel]), footprint == 0)
    lum = rgb.sum(axis=2)
    partial = footprint < 32
    lum_filled = np.where(partial, np.nanmedian(lum), lum)
    stack_stars = lum_stars(lum_filled, partial)
    stack_noise = robust_background_std(lum_filled, exclude=partial)
    for path in real_frames[::4]:
        single = debayer.debayer(io.read_frame(path).data, "GRBG").sum(axis=2)
        assert stack_stars > lum_stars(single)
        assert stack_noise < robust_background_std(single)
    assert stack_noise < robust_background_std(single) / 3.0  # √32 ≈ 5.7 in theory
