"""PNG thumbnails of our stacks and of plain 2-D and 3-plane FITS images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from crowdsky.stacking import InvalidInput, generate_thumbnail, stretch


def faint_nebula(shape: tuple[int, int] = (300, 200)) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    neb = 8.0 * np.exp(-((xx - 100) ** 2 + (yy - 150) ** 2) / (2 * 40.0**2))
    img = 1000 + neb + rng.normal(0, 5, shape)
    img[40:60, 40:60] += 20000  # a saturated galaxy core or star cluster (~0.7 % of pixels)
    return img.astype(np.float32)


@pytest.mark.parametrize("method", ["linear", "auto"])
def test_our_stack(stacked_mixed, tmp_path: Path, method: str) -> None:
    _, path = stacked_mixed
    out = generate_thumbnail(path, tmp_path / "t.png", stretch=method)
    with Image.open(out) as im:
        assert im.mode == "RGB"
        assert im.size == (288, 512)  # 540 x 960 shrunk to 512, aspect kept


def test_two_d_and_three_plane(tmp_path: Path) -> None:
    img = faint_nebula()
    fits.PrimaryHDU(img).writeto(tmp_path / "mono.fits")
    fits.PrimaryHDU(np.stack([img, img * 0.9, img * 0.8])).writeto(tmp_path / "cube.fits")
    with Image.open(generate_thumbnail(tmp_path / "mono.fits", tmp_path / "m.png", 100)) as im:
        assert im.mode == "L" and im.size == (67, 100)
    with Image.open(generate_thumbnail(tmp_path / "cube.fits", tmp_path / "c.png")) as im:
        assert im.mode == "RGB" and im.size == (200, 300)  # never enlarged


def test_auto_stretch_reveals_faint_nebulosity() -> None:
    img = faint_nebula()
    for method in ("linear", "auto"):
        out = stretch.stretch(img, method).astype(float)
        contrast = out[140:160, 90:110].mean() - out[10:30, 150:170].mean()
        if method == "linear":
            linear_contrast = contrast
    assert contrast > 2 * linear_contrast and contrast > 20
    assert 40 < np.median(stretch.stretch(img, "auto")) < 90  # background near 25 % grey


def test_bad_inputs(tmp_path: Path) -> None:
    fits.PrimaryHDU(faint_nebula()).writeto(tmp_path / "m.fits")
    with pytest.raises(InvalidInput):
        generate_thumbnail(tmp_path / "m.fits", tmp_path / "x.png", stretch="log")
    with pytest.raises(InvalidInput):
        generate_thumbnail(tmp_path / "missing.fits", tmp_path / "x.png")
    with pytest.raises(InvalidInput):
        generate_thumbnail(tmp_path / "m.fits", tmp_path / "x.png", max_size=0)
