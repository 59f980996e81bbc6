"""The astropy-free FITS writer: byte-identical to astropy's, verified, read back exactly."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from crowdsky.stacking import detect, fits_writer, io


def _header() -> fits_writer.Header:
    hdr = fits_writer.Header()
    hdr["OBJECT"] = ("M 94", "name of the object")
    hdr["QUOTED"] = ("it's a 'test'", "quotes are doubled")
    hdr["EMPTY"] = ""
    hdr["FLAG"] = (True, "a boolean")
    hdr["OFF"] = False
    hdr["COUNT"] = (np.int64(-42), "a numpy integer")
    hdr["TINY"] = (1e-5, "exponent written in upper case")
    hdr["HUGE"] = (1.2345678901234567e200, None)
    hdr["SUM"] = (0.1 + 0.2, "seventeen digits")
    hdr["SINGLE"] = (np.float32(2.9), "float32 as str() gives it")
    hdr["WHOLE"] = 60.0
    hdr["NOVALUE"] = (None, "undefined value")
    hdr["LONGNOTE"] = (3, "a comment far too long for one card " * 3)
    hdr["REFFRAME"] = "Light_M 94_10.0s_IRCUT_20250326-212131.fit"
    hdr["HIERARCH CROWDSKY SIGMA CLIP"] = 3.0
    hdr["HIERARCH CROWDSKY MEMORY LIMIT BYTES"] = 805306368
    hdr["HIERARCH CROWDSKY SCRATCH DIR"] = "none"
    hdr["HIERARCH CROWDSKY NORMALIZE SCALE"] = True
    hdr["CREATOR"] = ("ZWO", "renamed below")
    hdr.rename_keyword("CREATOR", "ORIGCREA")
    hdr["COUNT"] = (7, None)  # keeps its place and its comment
    return hdr


def _as_astropy(hdr: fits_writer.Header) -> fits.Header:
    out = fits.Header()
    for key in hdr:
        comment = hdr.comment(key) or None
        value = hdr[key]
        out[key] = fits.card.UNDEFINED if value is None else value
        if comment:
            out.comments[key] = comment
    return out


def _columns(n: int) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(n)
    return [
        ("INDEX", np.arange(n, dtype=np.int32)),
        ("FILENAME", np.array([f"frame_{k}.fit" for k in range(n)] if n else [], dtype=str)),
        ("ACCEPTED", rng.random(n) > 0.5),
        ("REASON", np.array(["", "clouds: transparency 0.3"] * (n // 2) + [""] * (n % 2))),
        ("EXPTIME", rng.normal(10, 1, n)),
        ("TRANSFORM", rng.normal(0, 1, (n, 6))),
    ]


def _write_both(tmp_path: Path, image: np.ndarray, n_stars: int, n_frames: int) -> tuple:
    hdr = _header()
    rng = np.random.default_rng(1)
    footprint = rng.integers(0, 40, image.shape[:2]).astype(np.uint16)
    footprint[0, 0] = 65535
    stars = np.zeros(n_stars, dtype=detect.STAR_DTYPE)
    stars["x"], stars["flux"] = rng.uniform(0, 100, n_stars), rng.uniform(1, 1e5, n_stars)
    stars["npix"], stars["fwhm"] = 9, np.nan
    frames = dict(_columns(n_frames))
    ours = tmp_path / "ours.fits"
    io.write_stack(ours, hdr, image, footprint, stars, frames)

    hdus = [fits.PrimaryHDU(header=_as_astropy(hdr))]
    planes = (
        [("RED", image[..., 0]), ("GREEN", image[..., 1]), ("BLUE", image[..., 2])]
        if image.ndim == 3
        else [("LUM", image)]
    )
    for channel, (name, plane) in enumerate(planes):
        hdu = fits.ImageHDU(np.ascontiguousarray(plane, dtype=np.float32), name=name)
        hdu.header["CHANNEL"] = (channel, "colour plane index")
        hdu.header["BUNIT"] = ("adu", "data units: ADU of the reference frame")
        hdus.append(hdu)
    fp = fits.ImageHDU(footprint, name="FOOTPRINT")
    fp.header["BUNIT"] = ("count", "frames covering each pixel")
    hdus.append(fp)
    star_hdu = fits.BinTableHDU(stars, name="STAR-TAB")
    star_hdu.header["COMMENT"] = "x, y: 0-based pixel coordinates (column, row) of the stack"
    hdus.append(star_hdu)
    cols = []
    for name, values in frames.items():
        if values.dtype.kind == "U":
            encoded = np.array([v.encode("ascii") for v in values], dtype="S")
            if encoded.dtype.itemsize == 0 or not len(encoded):
                encoded = encoded.astype("S1")
            cols.append(fits.Column(name=name, format=f"{encoded.dtype.itemsize}A", array=encoded))
        elif values.dtype == bool:
            cols.append(fits.Column(name=name, format="L", array=values))
        elif values.ndim == 2:
            cols.append(fits.Column(name=name, format=f"{values.shape[1]}D", array=values))
        elif values.dtype.kind == "i":
            cols.append(fits.Column(name=name, format="J", array=values))
        else:
            cols.append(fits.Column(name=name, format="D", array=values))
    hdus.append(fits.BinTableHDU.from_columns(cols, name="FRAMES"))
    theirs = tmp_path / "theirs.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)  # the long comment
        fits.HDUList(hdus).writeto(theirs, output_verify="exception")
    return ours, theirs, footprint, stars, frames


@pytest.mark.parametrize(
    ("shape", "n_stars", "n_frames"),
    [((48, 60, 3), 25, 7), ((7, 5), 0, 1), ((30, 41, 3), 1, 0)],
    ids=["rgb", "mono-odd-size-no-stars", "no-frames"],
)
def test_bytes_equal_astropy_and_read_back(
    tmp_path: Path, shape: tuple[int, ...], n_stars: int, n_frames: int
) -> None:
    image = np.random.default_rng(2).normal(1000, 30, shape).astype(np.float32)
    image[:3] = np.nan
    image.flat[7] = -np.inf
    ours, theirs, footprint, stars, frames = _write_both(tmp_path, image, n_stars, n_frames)
    assert ours.read_bytes() == theirs.read_bytes()
    assert os.path.getsize(ours) % fits_writer.BLOCK_BYTES == 0
    with fits.open(ours) as hdul:
        hdul.verify("exception")
        if image.ndim == 3:
            got = np.stack([hdul[n].data for n in ("RED", "GREEN", "BLUE")], axis=-1)
        else:
            got = hdul["LUM"].data
        np.testing.assert_array_equal(got, image)  # NaN and -inf in place
        np.testing.assert_array_equal(hdul["FOOTPRINT"].data, footprint)
        assert hdul["FOOTPRINT"].data.dtype.kind == "u"
        table = hdul["STAR-TAB"].data
        assert len(table if table is not None else []) == n_stars
        if n_stars:
            np.testing.assert_array_equal(table["flux"], stars["flux"])
            assert np.isnan(table["fwhm"]).all()
        hdr = hdul[0].header
        assert hdr["QUOTED"] == "it's a 'test'" and hdr["COUNT"] == 7
        assert hdr.comments["COUNT"] == "a numpy integer"
        assert hdr["HIERARCH CROWDSKY NORMALIZE SCALE"] is True
        assert "CREATOR" not in hdr and hdr["ORIGCREA"] == "ZWO"
        rows = hdul["FRAMES"].data
        if n_frames:
            assert list(rows["FILENAME"]) == list(frames["FILENAME"])
            np.testing.assert_array_equal(rows["ACCEPTED"], frames["ACCEPTED"])
            np.testing.assert_array_equal(rows["TRANSFORM"], frames["TRANSFORM"])


def test_an_astropy_header_is_written_as_astropy_formats_it(tmp_path: Path) -> None:
    header = fits.Header()
    header["RA"], header["DEC"] = 192.7, 41.1
    header["LONGTXT"] = "a string that needs CONTINUE cards " * 4
    image = np.ones((6, 4, 3), np.float32)
    path = tmp_path / "stack.fits"
    stars = np.zeros(0, dtype=detect.STAR_DTYPE)
    io.write_stack(path, header, image, np.ones((6, 4), np.uint16), stars, {"INDEX": np.arange(2)})
    with fits.open(path) as hdul:
        hdul.verify("exception")
        assert hdul[0].header["LONGTXT"] == header["LONGTXT"]
        assert hdul[0].header["RA"] == 192.7
        assert hdul["FRAMES"].data["INDEX"].tolist() == [0, 1]


def test_card_formatting_edge_cases() -> None:
    assert fits_writer.card_image("X", "a" * 100).startswith("X       = '" + "a" * 68 + "'")
    assert len(fits_writer.card_image("X", "a" * 100)) == 80
    assert fits_writer.card_image("HISTORY", "made by a test").rstrip() == "HISTORY made by a test"
    assert fits_writer.card_image("X", "café")[11:15] == "caf?"
    with pytest.raises(ValueError, match="finite"):
        fits_writer.card_image("X", float("nan"))
    with pytest.raises(ValueError, match="longer than 8"):
        fits_writer.card_image("TOOLONGKEY", 1)
    with pytest.raises(ValueError, match="unsupported"):
        fits_writer.card_image("X", [1, 2])
    hdr = fits_writer.Header()
    with pytest.raises(ValueError, match="finite"):
        hdr["BAD"] = float("inf")
    assert "BAD" not in hdr and len(hdr) == 0


def test_unsupported_data_is_refused(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "x.fits", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(ValueError, match="dtype"):
            fits_writer.write_file(
                fd, fits_writer.Header(), [fits_writer.ImageHDU("X", np.zeros((2, 2), np.int64))]
            )
        with pytest.raises(ValueError, match="dtype"):
            fits_writer.write_file(
                fd,
                fits_writer.Header(),
                [fits_writer.TableHDU("T", [("C", np.zeros(2, np.uint32))])],
            )
    finally:
        os.close(fd)
