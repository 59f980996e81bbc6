"""The shared card reader agrees with astropy on the cards CrowdSky meets."""

from __future__ import annotations

import io as stdio
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from crowdsky.stacking import fits_header


def _header() -> fits.Header:
    header = fits.Header()
    header["OBJECT"] = ("M 94", "target")
    header["QUOTED"] = "it's 'quoted'"
    header["LONGTXT"] = ("a long string that astropy writes as CONTINUE cards " * 4, "note")
    header["FLAG"], header["OFF"] = True, False
    header["COUNT"] = -42
    header["TINY"] = 1.5e-12
    header["BIG"] = 6.02e23
    header["WHOLE"] = 250.0
    header["RA"] = ("12 50 53.1", "sexagesimal")
    header["EMPTY"] = ""
    header["COMMENT"] = "commentary cards are not values"
    return header


def _read(header: fits.Header) -> fits_header.CardHeader:
    raw = header.tostring().encode("ascii")
    parsed = fits_header.read_header(stdio.BytesIO(b"SIMPLE  =" + b" " * 71 + raw))
    assert parsed is not None
    return parsed


def test_values_and_comments_match_astropy() -> None:
    header = _header()
    parsed = _read(header)
    for key in ("OBJECT", "QUOTED", "LONGTXT", "FLAG", "OFF", "COUNT", "TINY", "BIG", "WHOLE"):
        assert parsed[key] == header[key], key
        assert type(parsed[key]) is type(header[key]), key
    assert parsed.comment("OBJECT") == "target" and parsed.comment("LONGTXT") == "note"
    assert parsed["RA"] == "12 50 53.1" and parsed["EMPTY"] == ""
    assert "COMMENT" not in parsed
    assert parsed.nbytes % fits_header.BLOCK_BYTES == 0


def test_d_exponent_duplicates_and_odd_cards() -> None:
    cards = [
        "SIMPLE  =                    T",
        "EXPTIME =              1.0D+01 / Fortran exponent",
        "GAIN    =                   80",
        "GAIN    =                  120 / a second card: the first wins",
        "NOEQUALS  just text",
        "WEIRD   = 12abc / kept as text",
        "END",
    ]
    raw = "".join(c.ljust(80) for c in cards).ljust(2880).encode()
    parsed = fits_header.read_header(stdio.BytesIO(raw))
    assert parsed is not None
    assert parsed["EXPTIME"] == 10.0 and parsed["GAIN"] == 80
    assert parsed["WEIRD"] == "12abc" and "NOEQUALS" not in parsed


def test_not_fits_or_cut_headers_read_as_none() -> None:
    assert fits_header.read_header(stdio.BytesIO(b"\x89PNG" + b"\0" * 4000)) is None
    whole = fits.Header({"NAXIS": 0}).tostring().encode()
    assert fits_header.read_header(stdio.BytesIO(b"SIMPLE  =" + whole[9:1000])) is None


def test_walking_our_stack_finds_every_hdu_where_astropy_does(tmp_path: Path) -> None:
    path = tmp_path / "mef.fits"
    table = fits.BinTableHDU.from_columns([fits.Column(name="x", format="D", array=[1.0, 2.0])])
    hdus = [
        fits.PrimaryHDU(header=_header()),
        fits.ImageHDU(np.zeros((5, 7), np.float32), name="RED"),
        fits.ImageHDU(np.zeros((3, 3), np.uint16), name="FOOTPRINT"),
        table,
        fits.ImageHDU(np.zeros((2, 4, 6), np.int16), name="CUBE"),
    ]
    fits.HDUList(hdus).writeto(path)
    units = list(fits_header.walk_hdus(path))
    with fits.open(path) as hdul:
        assert len(units) == len(hdul)
        for unit, hdu in zip(units, hdul, strict=True):
            info = hdul.fileinfo(unit.index)
            assert unit.data_offset == info["datLoc"]
            assert -(-unit.data_bytes // 2880) * 2880 == info["datSpan"]
            assert unit.header.get("EXTNAME") == hdu.header.get("EXTNAME")
    assert [u.extension for u in units] == [None, "IMAGE", "IMAGE", "BINTABLE", "IMAGE"]
    assert units[4].data_bytes == 2 * 4 * 6 * 2


def test_structure_errors_are_value_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.fits"
    cards = ["SIMPLE  =  T", "BITPIX  =  16", "NAXIS   =  2", "END"]
    path.write_bytes("".join(c.ljust(80) for c in cards).ljust(2880).encode())
    with pytest.raises(ValueError, match="NAXIS1"):
        list(fits_header.walk_hdus(path))
    path.write_bytes(b"not fits at all" * 300)
    with pytest.raises(ValueError, match="no complete FITS header"):
        list(fits_header.walk_hdus(path))
