"""FITS validation and header normalisation (``ingest/fits_headers.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from crowdsky.db.models import RawFile, StackedFrame, StackingJob
from crowdsky.ingest import FrameHeader, InvalidFits, read_frame_header
from crowdsky.ingest.fits_headers import (
    BAYER_PATTERNS,
    TEXT_KEYWORDS,
    parse_angle,
    parse_date_obs,
)
from tests.ingest.fits_factory import frame_header, write_frame

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def read(path: Path) -> FrameHeader:
    return read_frame_header(path, path.name, now=NOW)


def test_reads_every_keyword(tmp_path: Path) -> None:
    path = write_frame(tmp_path / "a.fit", shape=(6, 10))
    h = read(path)
    assert h.date_obs == datetime(2025, 3, 27, 1, 20, 15, 500000, tzinfo=UTC)
    assert (h.exptime_s, h.ra_deg, h.dec_deg) == (10.0, 192.72, 41.12)
    assert (h.object_name, h.filter_name, h.telescop, h.instrume) == (
        "M 94",
        "IRCUT",
        "S50_test",
        "Seestar S50",
    )
    assert (h.gain, h.ccd_temp_c, h.bayerpat, h.eqmode) == (80.0, 25.1, "GRBG", 0)
    assert (h.site_lat_deg, h.site_long_deg) == (33.0, -80.0)
    assert (h.width, h.height) == (10, 6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-27T01:20:32.955368", datetime(2025, 3, 27, 1, 20, 32, 955368, tzinfo=UTC)),
        ("2025-03-27T01:20:32", datetime(2025, 3, 27, 1, 20, 32, tzinfo=UTC)),
        ("2025-03-27T01:20:32Z", datetime(2025, 3, 27, 1, 20, 32, tzinfo=UTC)),
        ("2025-03-27T01:20:32.5", datetime(2025, 3, 27, 1, 20, 32, 500000, tzinfo=UTC)),
        ("2025-03-27T01:20:32.123456789", datetime(2025, 3, 27, 1, 20, 32, 123456, tzinfo=UTC)),
        ("2025-03-27T03:20:32+02:00", datetime(2025, 3, 27, 1, 20, 32, tzinfo=UTC)),
        ("2025-03-27 01:20", datetime(2025, 3, 27, 1, 20, tzinfo=UTC)),
        ("2025-03-27", datetime(2025, 3, 27, tzinfo=UTC)),
    ],
)
def test_date_obs_is_utc_at_any_precision(text: str, expected: datetime) -> None:
    assert parse_date_obs(text, "f.fit", now=NOW) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (None, "no DATE-OBS"),
        ("", "no DATE-OBS"),
        ("yesterday", "not an ISO-8601"),
        ("2025-13-01T00:00:00", "not a valid date"),
        ("1970-01-01T00:00:00", "implausible"),
        ("2999-01-01T00:00:00", "implausible"),
        (12345, "not an ISO date string"),
    ],
)
def test_bad_date_obs_is_refused_with_reason(value: object, fragment: str) -> None:
    with pytest.raises(InvalidFits, match=fragment) as info:
        parse_date_obs(value, "frame.fit", now=NOW)
    assert str(info.value).startswith("frame.fit: ")


@pytest.mark.parametrize(
    ("value", "hours", "expected"),
    [
        (192.72, True, 192.72),
        ("192.72", True, 192.72),
        ("12 50 53.1", True, (12 + 50 / 60 + 53.1 / 3600) * 15),
        ("12:50:53.1", True, (12 + 50 / 60 + 53.1 / 3600) * 15),
        ("12h50m53.1s", True, (12 + 50 / 60 + 53.1 / 3600) * 15),
        ("+41 07 12", False, 41 + 7 / 60 + 12 / 3600),
        ("-00:30:00", False, -0.5),
        ("-5:23", False, -(5 + 23 / 60)),
    ],
)
def test_angles_in_degrees_or_sexagesimal(value: object, hours: bool, expected: float) -> None:
    assert parse_angle(value, hours_if_sexagesimal=hours) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("value", ["abc", "12:75:00", "nan", True, "1 2 3 4"])
def test_non_numeric_angles_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_angle(value, hours_if_sexagesimal=True)


def test_sexagesimal_header_values(tmp_path: Path) -> None:
    path = write_frame(tmp_path / "s.fit", ra="12 50 53.1", dec="+41:07:12")
    h = read(path)
    assert h.ra_deg == pytest.approx(192.72125)
    assert h.dec_deg == pytest.approx(41.12)


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"ra": "north-ish"}, "RA is not a valid coordinate"),
        ({"dec": "up"}, "DEC is not a valid coordinate"),
        ({"dec": 95.0}, "outside -90"),
        ({"ra": 400.0}, "outside 0-360"),
        ({"dec": None}, "has RA but no DEC"),
        ({"date_obs": None}, "no DATE-OBS"),
        ({"date_obs": "1999-12-31T23:59:59"}, "implausible"),
        ({"bayerpat": "XYZW"}, "BAYERPAT 'XYZW'"),
        ({"bayerpat": None}, "without BAYERPAT"),
        ({"exptime": -1.0}, "not a positive"),
        ({"extra": {"GAIN": "high"}}, "GAIN 'high' is not a number"),
        (
            {"filter_name": "F" * 60},
            "FILTER 'F+' is 60 characters long; CrowdSky stores at most 32",
        ),
        ({"telescop": "T" * 66}, "TELESCOP 'T+' is 66 characters long; CrowdSky stores at most 64"),
    ],
)
def test_bad_headers_are_refused(tmp_path: Path, values: dict, fragment: str) -> None:
    path = write_frame(tmp_path / "bad.fit", **values)
    with pytest.raises(InvalidFits, match=fragment) as info:
        read(path)
    assert str(info.value).startswith("bad.fit: ")


def test_long_descriptive_text_is_cut_to_its_column(tmp_path: Path) -> None:
    long_object = "NGC 4736 " + "x" * 300  # astropy writes CONTINUE cards
    h = read(write_frame(tmp_path / "t.fit", object_name=long_object, instrume="I" * 66))
    assert h.object_name == long_object[:255]
    assert h.instrume == "I" * 64
    # exactly at the limits nothing changes
    h = read(write_frame(tmp_path / "u.fit", filter_name="F" * 32, telescop="T" * 64))
    assert (h.filter_name, h.telescop) == ("F" * 32, "T" * 64)


def test_text_limits_are_the_columns_lengths() -> None:
    tables = (RawFile.__table__, StackingJob.__table__, StackedFrame.__table__)
    raw, job, stack = (table.c for table in tables)
    expected = {
        "OBJECT": (raw.fits_object.type.length, True),
        "INSTRUME": (raw.fits_instrume.type.length, True),
        "FILTER": (raw.fits_filter.type.length, False),
        "TELESCOP": (raw.fits_telescop.type.length, False),
    }
    assert expected == TEXT_KEYWORDS
    # what fits a raw file fits the job and the stack made of it
    for raw_column, copies in (
        (raw.fits_object, (job.object_name, stack.object_name)),
        (raw.fits_filter, (job.filter_name, stack.filter_name)),
        (raw.fits_telescop, (job.telescope, stack.telescope)),
    ):
        for copy in copies:
            assert copy.type.length >= raw_column.type.length, copy
    assert all(len(p) <= raw.fits_bayerpat.type.length for p in BAYER_PATTERNS)


def test_missing_coordinates_are_allowed(tmp_path: Path) -> None:
    h = read(write_frame(tmp_path / "n.fit", ra=None, dec=None))
    assert h.ra_deg is None and h.dec_deg is None


def test_mono_camera_without_bayerpat_is_fine(tmp_path: Path) -> None:
    h = read(write_frame(tmp_path / "m.fit", bayerpat=None, instrume="ASI1600MM"))
    assert h.bayerpat is None


def test_bayerpat_is_normalised(tmp_path: Path) -> None:
    assert read(write_frame(tmp_path / "b.fit", bayerpat="rggb")).bayerpat == "RGGB"


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.fit"
    path.write_bytes(b"")
    with pytest.raises(InvalidFits, match=r"empty\.fit: the file is empty"):
        read(path)


def test_not_fits(tmp_path: Path) -> None:
    path = tmp_path / "photo.fit"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 4000)
    with pytest.raises(InvalidFits, match="not a readable FITS file"):
        read(path)


@pytest.mark.parametrize("keep", [2880, 2880 + 100, 2880 * 2 - 1])
def test_truncated_fits_is_refused(tmp_path: Path, keep: int) -> None:
    full = write_frame(tmp_path / "full.fit", shape=(40, 60))
    cut = tmp_path / "cut.fit"
    cut.write_bytes(full.read_bytes()[:keep])
    with pytest.raises(InvalidFits, match=r"cut\.fit: (file is truncated|not a readable)"):
        read(cut)


def test_truncated_header_is_refused(tmp_path: Path) -> None:
    full = write_frame(tmp_path / "full.fit")
    cut = tmp_path / "cut.fit"
    cut.write_bytes(full.read_bytes()[:1000])
    with pytest.raises(InvalidFits, match=r"cut\.fit"):
        read(cut)


def test_header_without_image(tmp_path: Path) -> None:
    path = tmp_path / "noimage.fit"
    fits.PrimaryHDU(header=frame_header()).writeto(path)
    with pytest.raises(InvalidFits, match="no image data"):
        read(path)


def test_table_only_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "table.fit"
    table = fits.BinTableHDU.from_columns([fits.Column(name="x", format="E", array=[1.0])])
    fits.HDUList([fits.PrimaryHDU(header=frame_header()), table]).writeto(path)
    with pytest.raises(InvalidFits, match="no image data"):
        read(path)


def test_one_dimensional_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "line.fit"
    fits.PrimaryHDU(np.zeros(10, np.int16), header=frame_header()).writeto(path)
    with pytest.raises(InvalidFits, match="1 axes"):
        read(path)


def test_colour_cube_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "rgb.fit"
    hdr = frame_header(bayerpat=None)
    fits.PrimaryHDU(np.zeros((3, 5, 7), np.float32), header=hdr).writeto(path)
    h = read(path)
    assert (h.width, h.height) == (7, 5)


def test_multi_extension_stack_reads_its_primary_keywords(tmp_path: Path) -> None:
    """Our own stacks (and the later clients' MEF) keep DATE-OBS, RA, DEC and OBJECT in a
    data-less primary HDU; the image extensions inherit them, their own cards win."""
    path = tmp_path / "stack.fits"
    primary = fits.PrimaryHDU(header=frame_header(bayerpat=None))
    red = fits.ImageHDU(np.zeros((5, 7), np.float32), name="RED")
    red.header["OBJECT"] = "from the extension"
    fits.HDUList([primary, red, fits.ImageHDU(np.zeros((5, 7), np.float32), name="GREEN")]).writeto(
        path
    )
    h = read(path)
    expected = read(write_frame(tmp_path / "flat.fit", shape=(5, 7)))
    assert (h.width, h.height) == (7, 5)
    assert (h.date_obs, h.ra_deg, h.dec_deg) == (
        expected.date_obs,
        expected.ra_deg,
        expected.dec_deg,
    )
    assert h.object_name == "from the extension"


def test_real_frame(real_frames: list[Path]) -> None:
    h = read_frame_header(real_frames[0], real_frames[0].name)
    assert h.date_obs == datetime(2025, 3, 27, 1, 20, 32, 955368, tzinfo=UTC)
    assert (h.width, h.height, h.bayerpat, h.telescop) == (1080, 1920, "GRBG", "S50_00c0ffee")
