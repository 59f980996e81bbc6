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


RESIDUAL_GRADIENT_LEVELS = 3.0
"""Largest sky ramp across the whole preview, 8-bit grey levels per colour, after the
background model. The preview's sky noise is ~10-15 levels per pixel, so a 3-level
ramp over 512 px is a quarter of a pixel's noise, invisible; the simulated sky's own
gradient (20 % across the frame, colour-dependent) spans 50-130 levels without the
model, which is the green-to-purple sky the gallery showed."""


def sky_ramp_levels(png: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per colour: the mean sky level and the ramp across the frame (|a| + |b| of a
    plane fitted to sky pixels, x and y in units of the width and height), 8-bit."""
    import cv2

    with Image.open(png) as im:
        px = np.asarray(im.convert("RGB")).astype(np.float64)
    lum = px.mean(axis=2)
    med = np.median(lum)
    sig = 1.4826 * np.median(np.abs(lum - med))
    sources = cv2.dilate((lum > med + 3 * sig).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    rows, cols = lum.shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    sky = ~sources
    design = np.column_stack(
        [np.ones(sky.sum()), (xx[sky] - cols / 2) / cols, (yy[sky] - rows / 2) / rows]
    )
    coef = np.linalg.lstsq(design, px[sky], rcond=None)[0]  # (3 terms, 3 colours)
    return coef[0], np.abs(coef[1]) + np.abs(coef[2])


@pytest.fixture(scope="module")
def galaxy_stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated galaxy under a coloured sky with a 10 % / 20 % gradient, stacked."""
    from crowdsky.simulate import (
        ExtendedTargetSpec,
        SequenceSpec,
        SkyModel,
        StarFieldModel,
        simulate_sequence,
    )
    from crowdsky.stacking import stack_files

    root = tmp_path_factory.mktemp("galaxy")
    spec = SequenceSpec(
        n_frames=6,
        seed=5,
        shape=(960, 540),
        stars=StarFieldModel(n_stars=150),
        extended=ExtendedTargetSpec("galaxy"),
        sky=SkyModel(gradient=(0.1, -0.2), rgb=(1.0, 0.9, 0.7)),
    )
    seq = simulate_sequence(root / "frames", spec)
    out = root / "stack.fits"
    stack_files(seq.paths, out)
    return out


def test_preview_sky_is_flat_and_neutral_with_the_target_kept(
    galaxy_stack: Path, tmp_path: Path
) -> None:
    before = galaxy_stack.read_bytes()
    flat = generate_thumbnail(galaxy_stack, tmp_path / "auto.png", stretch="auto")
    levels, ramp = sky_ramp_levels(flat)
    assert (ramp < RESIDUAL_GRADIENT_LEVELS).all(), ramp
    assert np.ptp(levels) < 5.0, levels  # one grey, not a colour cast
    # without the model the same sky spans tens of levels (the test can fail)
    raw = io_stretch_without_model(galaxy_stack, tmp_path / "raw.png")
    assert sky_ramp_levels(raw)[1].max() > 10 * RESIDUAL_GRADIENT_LEVELS
    # the galaxy survives: the preview's centre is far above its sky
    with Image.open(flat) as im:
        px = np.asarray(im.convert("L")).astype(float)
    rows, cols = px.shape
    centre = px[rows // 2 - 10 : rows // 2 + 10, cols // 2 - 10 : cols // 2 + 10]
    assert np.median(centre) > levels.mean() + 60
    assert galaxy_stack.read_bytes() == before  # the science planes are never touched


def io_stretch_without_model(stack: Path, out: Path) -> Path:
    """The previous preview: the same shrink and stretch, no background model."""
    import cv2

    from crowdsky.stacking import io

    image = io.read_image_for_display(stack)
    image = cv2.resize(np.nan_to_num(image, nan=float(np.nanmedian(image))), (288, 512))
    return io.write_png(out, stretch.stretch(image, "auto"))


def test_large_jpeg_preview(galaxy_stack: Path, tmp_path: Path) -> None:
    out = generate_thumbnail(galaxy_stack, tmp_path / "big.jpg", max_size=1024, stretch="auto")
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (540, 960) and im.mode == "RGB"  # never enlarged
    assert out.stat().st_size < 600_000


def _red_cast_stack(path: Path, cards: dict[str, object]) -> Path:
    """A flat sky with 60 stars whose red is half their green and blue (a camera cast)."""
    rng = np.random.default_rng(5)
    green = rng.normal(100.0, 1.0, (240, 320)).astype(np.float32)
    for y, x in zip(rng.integers(10, 230, 60), rng.integers(10, 310, 60), strict=True):
        green[y - 1 : y + 2, x - 1 : x + 2] += 25.0
    star = green - 100.0
    planes = {"RED": 100.0 + 0.5 * star, "GREEN": green, "BLUE": green.copy()}
    primary = fits.PrimaryHDU()
    for key, value in cards.items():
        primary.header[key] = value
    hdus = [primary] + [fits.ImageHDU(p.astype(np.float32), name=n) for n, p in planes.items()]
    fits.HDUList(hdus).writeto(path)
    return path


def _star_colour(png: Path) -> float:
    """Red over green of the preview's star pixels (bright, not clipped)."""
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=float)
    green = pixels[..., 1]
    stars = (green > 2 * np.median(green) + 20) & (pixels.max(axis=2) < 250)
    assert stars.sum() > 50
    return float(pixels[stars, 0].mean() / green[stars].mean())


def test_catalogue_white_balance_replaces_the_estimated_one(tmp_path: Path) -> None:
    estimated = generate_thumbnail(
        _red_cast_stack(tmp_path / "plain.fits", {}), tmp_path / "plain.png", stretch="auto"
    )
    # the catalogue says these stars are truly red: its factors (1, 1, 1) keep them so
    calibrated = generate_thumbnail(
        _red_cast_stack(
            tmp_path / "cal.fits", {"COLCAL": True, "WBR": 1.0, "WBG": 1.0, "WBB": 1.0}
        ),
        tmp_path / "cal.png",
        stretch="auto",
    )
    # and factors that undo the cast neutralise them
    undone = generate_thumbnail(
        _red_cast_stack(
            tmp_path / "undo.fits", {"COLCAL": True, "WBR": 2.0, "WBG": 1.0, "WBB": 1.0}
        ),
        tmp_path / "undo.png",
        stretch="auto",
    )
    assert _star_colour(estimated) == pytest.approx(1.0, abs=0.08)
    assert _star_colour(calibrated) < 0.8
    assert _star_colour(undone) == pytest.approx(1.0, abs=0.08)
