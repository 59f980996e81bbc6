"""Interchange copies (``crowdsky.stacking.export_stack``): the primary-HDU RGB cube
and the 16-bit TIFF, read back with astropy and tifffile, and the cube of a stack of
the real frames opened by Debian's Siril (``siril-cli``)."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile
from astropy.io import fits
from astropy.wcs import WCS

from crowdsky.stacking import InvalidInput, export_stack, stack_files, write_export
from tests.db_backends import require_all_backends


@pytest.fixture()
def product_with_edges(stacked_mixed, tmp_path: Path) -> Path:
    """The mixed stack with an uncovered corner, as a stack of rotated frames has (the
    reference frame covers all of the simulated stack): NaN and FOOTPRINT 0 there."""
    _, path = stacked_mixed
    out = tmp_path / "edges.fits"
    with fits.open(path) as hdul:
        for name in ("RED", "GREEN", "BLUE"):
            hdul[name].data[-40:, :25] = np.nan
        hdul["FOOTPRINT"].data[-40:, :25] = 0
        hdul.writeto(out)
    return out


def product_planes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with fits.open(path) as hdul:
        rgb = np.stack([hdul[n].data.astype(np.float32) for n in ("RED", "GREEN", "BLUE")])
        return rgb, hdul["FOOTPRINT"].data


def test_cube_is_the_product_with_uncovered_pixels_filled_and_masked(
    product_with_edges: Path,
) -> None:
    path = product_with_edges
    rgb, footprint = product_planes(path)
    cube_path = path.with_name("cube.fits")
    cube_path.write_bytes(export_stack(path, "cube"))
    with fits.open(cube_path) as hdul:
        hdul.verify("exception")
        assert [h.name for h in hdul] == ["PRIMARY", "MASK"]
        cube, hdr = hdul[0].data, hdul[0].header
        mask = hdul["MASK"].data.astype(bool)
    assert cube.shape == (3, *footprint.shape) and hdr["NAXIS3"] == 3
    np.testing.assert_array_equal(mask, footprint == 0)
    assert 0 < mask.sum() < mask.size
    assert np.isfinite(cube).all()
    np.testing.assert_array_equal(cube[:, ~mask], rgb[:, ~mask])  # covered: the same ADU
    for plane, filled in zip(rgb, cube, strict=True):  # filled with the plane's sky
        assert np.ptp(filled[mask]) == 0
        assert filled[mask][0] == pytest.approx(np.nanmedian(plane), rel=0.01)
    product_hdr = fits.getheader(path)
    for key in ("DATE-OBS", "EXPTIME", "NCOMBINE", "INSTRUME"):
        assert hdr[key] == product_hdr[key]


def test_cube_carries_the_products_wcs(stacked_mixed, tmp_path: Path) -> None:
    """A solved stack's celestial WCS (in the primary header) survives the export and
    astropy reads it on the 3-plane cube."""
    _, path = stacked_mixed
    solved = tmp_path / "solved.fits"
    with fits.open(path) as hdul:
        rows, cols = hdul["GREEN"].data.shape
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [193.04, 40.97]
        wcs.wcs.crpix = [cols / 2, rows / 2]
        wcs.wcs.cd = [[-6.6e-4, 1e-6], [1e-6, 6.6e-4]]
        hdul[0].header.update(wcs.to_header())
        hdul.writeto(solved)
    with fits.open(_bytes_file(tmp_path, export_stack(solved.read_bytes(), "cube"))) as hdul:
        got = WCS(hdul[0].header, naxis=2)
        assert hdul[0].header["WCSAXES"] == 2
    ra, dec = got.pixel_to_world_values(cols / 2 - 1, rows / 2 - 1)
    assert (float(ra), float(dec)) == pytest.approx((193.04, 40.97), abs=1e-9)
    np.testing.assert_allclose(got.pixel_scale_matrix, wcs.pixel_scale_matrix)


def test_tiff_is_16_bit_rgb_top_down(product_with_edges: Path, tmp_path: Path) -> None:
    path = product_with_edges
    rgb, footprint = product_planes(path)
    out = write_export(path, tmp_path / "stack.tif", "tiff")
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert page.photometric == tifffile.PHOTOMETRIC.RGB
        pixels = page.asarray()
    assert pixels.dtype == np.uint16 and pixels.shape == (*footprint.shape, 3)
    covered = footprint[::-1] > 0  # top-down: TIFF row 0 is the FITS's last row
    expected = np.clip(np.rint(np.moveaxis(rgb, 0, -1)[::-1]), 0, 65535)
    np.testing.assert_array_equal(pixels[covered], expected[covered])
    assert (pixels[:40, :25] > 0).all()  # the uncovered corner (top-left now): filled


def test_unknown_format_and_non_stack_are_refused(stacked_mixed, tmp_path: Path) -> None:
    _, path = stacked_mixed
    with pytest.raises(InvalidInput, match="unknown export format"):
        export_stack(path, "png")
    plain = tmp_path / "plain.fits"
    fits.PrimaryHDU(np.zeros((8, 8), np.float32)).writeto(plain)
    with pytest.raises(InvalidInput, match="not a CrowdSky stack"):
        export_stack(plain, "cube")
    with pytest.raises(InvalidInput, match="cannot read"):
        export_stack(b"not a FITS file", "tiff")


def _bytes_file(directory: Path, data: bytes) -> Path:
    path = directory / "export.fits"
    path.write_bytes(data)
    return path


SIRIL_STAT = re.compile(r"Mean:\s*([-+0-9.eEnaif]+).*?Median:\s*([-+0-9.eEnaif]+)", re.I)


def siril_cli() -> str:
    found = shutil.which("siril-cli")
    if found is None:
        message = "siril-cli not found (Debian package `siril`; .ci/run installs it)"
        if require_all_backends():
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.mark.realdata
@pytest.mark.slow
def test_siril_opens_the_cube_of_a_real_stack(real_frames: list[Path], tmp_path: Path) -> None:
    """Siril 1.0.6 refuses the multi-extension product; it loads the cube, and the
    statistics it computes on each plane are finite."""
    siril = siril_cli()
    stack = tmp_path / "m94.fits"
    stack_files(real_frames[:15], stack)
    write_export(stack, tmp_path / "cube.fits", "cube")
    (tmp_path / "check.ssf").write_text("requires 1.0.0\nload cube.fits\nstat\nclose\n")
    run = subprocess.run(
        [siril, "-d", str(tmp_path), "-s", str(tmp_path / "check.ssf")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log
    stats = SIRIL_STAT.findall(log)
    assert len(stats) == 3, log  # one line per colour plane
    assert all(math.isfinite(float(v)) for pair in stats for v in pair), log
