"""Understand one uploaded raw frame from its FITS header, or say exactly why not.

The cards are parsed by CrowdSky's one FITS header reader
(:mod:`crowdsky.stacking.fits_header`); this module checks that the file really holds
a complete 2-D or 3-D image and reads, normalised once, every keyword chunking and
stacking need: DATE-OBS as UTC at full precision, RA/DEC in degrees (sexagesimal
accepted), a valid BAYERPAT for Seestar raws. Text longer than its ``raw_files``
column (the limits are read from the table) is refused for the keywords that group
frames (FILTER, TELESCOP: cutting could merge two of them) and cut for names shown to
people (OBJECT, INSTRUME).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import String

from crowdsky.db.models import RawFile
from crowdsky.ingest.errors import InvalidFits
from crowdsky.stacking import fits_header
from crowdsky.stacking.fits_header import CardHeader

#: The first 10 bytes of every FITS file (the SIMPLE keyword and its value indicator).
FITS_START = b"SIMPLE  = "
#: Signatures of compressed containers (a FITS library may decompress them on its own).
COMPRESSED_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"PK\x03\x04", "zip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
#: Oldest plausible DATE-OBS (no smart telescope existed before).
EARLIEST_DATE_OBS = datetime(2000, 1, 1, tzinfo=UTC)
#: Tolerance for clocks running ahead of the server's.
FUTURE_TOLERANCE = timedelta(days=1)
BAYER_PATTERNS = frozenset({"RGGB", "BGGR", "GRBG", "GBRG"})

_DATE_OBS = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"\s*(Z|UTC|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)
_SEXAGESIMAL = re.compile(
    r"^([+-])?\s*(\d+(?:\.\d*)?)[\s:hHdD°]+(\d+(?:\.\d*)?)"
    r"(?:[\s:mM']+(\d+(?:\.\d*)?)[sS\"]?)?\s*$"
)


def _column_length(name: str) -> int:
    column_type = RawFile.__table__.c[name].type
    if not isinstance(column_type, String) or column_type.length is None:
        raise TypeError(f"raw_files.{name} is not a text column with a length")
    return column_type.length


#: Text keyword -> (most characters stored, whether a longer value is cut rather than
#: refused). The lengths are those of the ``raw_files`` columns the values go to;
#: ``BAYERPAT`` is absent, its validation admits only 4-letter layouts.
TEXT_KEYWORDS: dict[str, tuple[int, bool]] = {
    "OBJECT": (_column_length("fits_object"), True),
    "INSTRUME": (_column_length("fits_instrume"), True),
    "FILTER": (_column_length("fits_filter"), False),
    "TELESCOP": (_column_length("fits_telescop"), False),
}


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """What CrowdSky knows about one raw frame (units in the names; None = keyword absent)."""

    date_obs: datetime
    exptime_s: float | None
    ra_deg: float | None
    dec_deg: float | None
    object_name: str | None
    filter_name: str | None
    telescop: str | None
    instrume: str | None
    gain: float | None
    ccd_temp_c: float | None
    bayerpat: str | None
    eqmode: int | None
    site_lat_deg: float | None
    site_long_deg: float | None
    width: int
    height: int

    def raw_file_columns(self, *, scrub_location: bool = False) -> dict[str, Any]:
        """The ``raw_files`` columns this header fills (the observing site left out
        with ``scrub_location``)."""
        return {
            "fits_date_obs": self.date_obs,
            "fits_object": self.object_name,
            "fits_exptime": self.exptime_s,
            "fits_ra": self.ra_deg,
            "fits_dec": self.dec_deg,
            "fits_filter": self.filter_name,
            "fits_telescop": self.telescop,
            "fits_instrume": self.instrume,
            "fits_gain": self.gain,
            "fits_ccd_temp": self.ccd_temp_c,
            "fits_bayerpat": self.bayerpat,
            "fits_eqmode": self.eqmode,
            "fits_sitelat": None if scrub_location else self.site_lat_deg,
            "fits_sitelong": None if scrub_location else self.site_long_deg,
            "image_width": self.width,
            "image_height": self.height,
        }


def read_frame_header(
    path: str | os.PathLike[str], filename: str, *, now: datetime | None = None
) -> FrameHeader:
    """Validate a raw frame on disk and read its header.

    Parameters
    ----------
    path
        The stored file (already complete on disk).
    filename
        The client's name for it, used in every error message.
    now
        Reference time for the "date in the future" check; default: the current time.

    Returns
    -------
    FrameHeader
        The normalised header values.

    Raises
    ------
    InvalidFits
        Not FITS, truncated, no image, or a required or malformed keyword; the message
        names the file and the problem.
    """
    file_path = Path(path)
    size = file_path.stat().st_size
    if size == 0:
        raise InvalidFits(filename, "the file is empty (0 bytes)")
    _refuse_unless_plain_fits(file_path, filename)
    header, width, height, in_extension = _read_image_header(file_path, filename, size)
    date_obs = parse_date_obs(header.get("DATE-OBS"), filename, now=now)
    ra_deg = _angle(header, "RA", filename, hours_if_sexagesimal=True)
    dec_deg = _angle(header, "DEC", filename, hours_if_sexagesimal=False)
    if (ra_deg is None) != (dec_deg is None):
        present, missing = ("RA", "DEC") if dec_deg is None else ("DEC", "RA")
        raise InvalidFits(filename, f"header has {present} but no {missing}")
    if ra_deg is not None and not 0.0 <= ra_deg <= 360.0:
        raise InvalidFits(filename, f"RA {ra_deg} is outside 0-360 degrees")
    if dec_deg is not None and not -90.0 <= dec_deg <= 90.0:
        raise InvalidFits(filename, f"DEC {dec_deg} is outside -90..+90 degrees")
    exptime = _number(header, "EXPTIME", filename)
    if exptime is None:
        exptime = _number(header, "EXPOSURE", filename)
    if exptime is not None and exptime <= 0:
        raise InvalidFits(filename, f"EXPTIME {exptime} is not a positive number of seconds")
    instrume = _text(header, "INSTRUME", filename)
    bayerpat = _text(header, "BAYERPAT", filename)
    if bayerpat is not None:
        bayerpat = bayerpat.upper()
        if bayerpat not in BAYER_PATTERNS:
            raise InvalidFits(
                filename,
                f"BAYERPAT {bayerpat!r} is not one of {', '.join(sorted(BAYER_PATTERNS))}",
            )
    elif (
        int(header.get("NAXIS", 0)) == 2
        and not in_extension  # a plane of a multi-extension stack is already debayered
        and "seestar" in (instrume or "").lower()
    ):
        raise InvalidFits(filename, "Seestar raw frame without BAYERPAT; it cannot be debayered")
    eqmode = _number(header, "EQMODE", filename)
    return FrameHeader(
        date_obs=date_obs,
        exptime_s=exptime,
        ra_deg=ra_deg,
        dec_deg=dec_deg,
        object_name=_text(header, "OBJECT", filename),
        filter_name=_text(header, "FILTER", filename),
        telescop=_text(header, "TELESCOP", filename),
        instrume=instrume,
        gain=_number(header, "GAIN", filename),
        ccd_temp_c=_number(header, "CCD-TEMP", filename),
        bayerpat=bayerpat,
        eqmode=None if eqmode is None else int(eqmode),
        site_lat_deg=_site(header, "SITELAT", filename),
        site_long_deg=_site(header, "SITELONG", filename),
        width=width,
        height=height,
    )


def parse_date_obs(value: Any, filename: str, *, now: datetime | None = None) -> datetime:
    """DATE-OBS as an aware UTC datetime, keeping its full precision.

    A value without a zone is UTC (FITS times are UTC unless TIMESYS says otherwise;
    the original read them in the server's local zone).

    Raises
    ------
    InvalidFits
        Missing, unparseable, before 2000 or more than a day in the future.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidFits(filename, "header has no DATE-OBS; raw frames need their start time")
    if not isinstance(value, str):
        raise InvalidFits(filename, f"DATE-OBS {value!r} is not an ISO date string")
    match = _DATE_OBS.match(value.strip())
    if match is None:
        raise InvalidFits(
            filename, f"DATE-OBS {value!r} is not an ISO-8601 time (YYYY-MM-DDThh:mm:ss[.s])"
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise InvalidFits(filename, f"DATE-OBS {value!r} is not a valid date: {exc}") from exc
    if zone and zone.upper() not in ("Z", "UTC"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    reference = now or datetime.now(UTC)
    if moment < EARLIEST_DATE_OBS or moment > reference + FUTURE_TOLERANCE:
        raise InvalidFits(
            filename,
            f"DATE-OBS {value!r} is implausible (before 2000 or in the future); "
            "check the telescope's clock",
        )
    return moment


def parse_angle(value: Any, *, hours_if_sexagesimal: bool) -> float:
    """Degrees from a number or a sexagesimal string (``12 50 53.1``, ``+41:07:12``).

    Sexagesimal RA is in hours (multiplied by 15); numeric values are degrees.

    Raises
    ------
    ValueError
        Neither a finite number nor a sexagesimal angle.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not an angle")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            match = _SEXAGESIMAL.match(text)
            if match is None:
                raise ValueError(f"{text!r} is neither a number nor a sexagesimal angle") from None
            sign, whole, minutes, seconds = match.groups()
            if float(minutes) >= 60 or float(seconds or 0) >= 60:
                raise ValueError(f"{text!r}: minutes and seconds must be below 60") from None
            number = float(whole) + float(minutes) / 60 + float(seconds or 0) / 3600
            if sign == "-":
                number = -number
            if hours_if_sexagesimal:
                number *= 15.0
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not finite")
    return number


def _refuse_unless_plain_fits(path: Path, filename: str) -> None:
    """Refuse anything but an uncompressed FITS file, before any parser sees it.

    astropy (used elsewhere) opens gzip, bzip2 and zip files transparently: a 1 MB
    upload can hold a gigabyte of zeros and cost seconds of CPU. A FITS file starts
    with the card ``SIMPLE  =`` (FITS 4.0, section 4.4.1.1), and a compressed one never
    does, so its first bytes settle it. Raws are stored as sent, so accepting
    compressed ones would also put the expansion on every worker.
    """
    with path.open("rb") as fh:
        start = fh.read(len(FITS_START))
    for magic, kind in COMPRESSED_MAGIC:
        if start.startswith(magic):
            raise InvalidFits(
                filename, f"{kind}-compressed files are not accepted; upload the plain .fit file"
            )
    if start != FITS_START:
        raise InvalidFits(filename, "not a readable FITS file (it does not start with 'SIMPLE  =')")


def _read_image_header(path: Path, filename: str, size: int) -> tuple[CardHeader, int, int, bool]:
    """The header of the first image HDU (with the primary header's keywords when it is
    an extension), its width and height, and whether it is an extension, after checking
    that its data are complete."""
    try:
        primary: CardHeader | None = None
        for unit in fits_header.walk_hdus(path):
            header = unit.header
            primary = primary or header
            if header.get("ZIMAGE") is True:
                raise InvalidFits(
                    filename,
                    "tile-compressed FITS is not accepted; upload the uncompressed frame",
                )
            naxis = int(header.get("NAXIS", 0))  # type: ignore[call-overload]
            if naxis == 0 or unit.extension in ("BINTABLE", "TABLE"):
                continue
            if naxis not in (2, 3):
                raise InvalidFits(filename, f"image has {naxis} axes; expected 2 or 3")
            axes = [int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1)]  # type: ignore[call-overload]
            if min(axes) <= 0:
                raise InvalidFits(filename, f"image has an empty axis {axes}")
            if unit.data_offset + unit.data_bytes > size:
                raise InvalidFits(
                    filename,
                    f"file is truncated: the image needs {unit.data_bytes} bytes of data "
                    f"but only {max(size - unit.data_offset, 0)} are present",
                )
            if unit.index > 0:  # an extension inherits the primary header's keywords
                header = CardHeader.merged(header, primary, _is_hdu_structure)
            return header, axes[0], axes[1], unit.index > 0
    except InvalidFits:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        detail = str(exc).split(". ")[0] or type(exc).__name__
        # never show where the server keeps the file
        detail = detail.replace(str(path), filename).replace(str(path.parent), "")
        raise InvalidFits(filename, f"not a readable FITS file ({detail})") from exc
    raise InvalidFits(filename, "FITS file holds no image data (no 2-D or 3-D image HDU)")


#: Keywords that describe one HDU's own data, never inherited from the primary header.
_HDU_STRUCTURE = frozenset(
    {
        "SIMPLE",
        "XTENSION",
        "BITPIX",
        "EXTEND",
        "PCOUNT",
        "GCOUNT",
        "EXTNAME",
        "EXTVER",
        "BSCALE",
        "BZERO",
        "BLANK",
        "INHERIT",
        "COMMENT",
        "HISTORY",
        "",
    }
)


def _is_hdu_structure(key: str) -> bool:
    """Keywords an image extension never inherits from the primary header (a
    multi-extension stack, ours included, keeps DATE-OBS, RA, DEC, OBJECT in its
    data-less primary HDU; those are inherited)."""
    return key in _HDU_STRUCTURE or key.startswith("NAXIS")


def _text(header: CardHeader, key: str, filename: str) -> str | None:
    """A text keyword, stripped, fitted to its column (see ``TEXT_KEYWORDS``)."""
    value = header.get(key)
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    limit, cut = TEXT_KEYWORDS.get(key, (None, False))
    if limit is not None and len(text) > limit:
        if not cut:
            raise InvalidFits(
                filename,
                f"{key} {text!r} is {len(text)} characters long; CrowdSky stores at most "
                f"{limit} (frames are grouped by {key}, so it is not shortened)",
            )
        text = text[:limit].rstrip()
    return text or None


def _number(header: CardHeader, key: str, filename: str) -> float | None:
    value = header.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise InvalidFits(filename, f"{key} is a boolean, expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidFits(filename, f"{key} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise InvalidFits(filename, f"{key} {value!r} is not a finite number")
    return number


def _angle(
    header: CardHeader, key: str, filename: str, *, hours_if_sexagesimal: bool
) -> float | None:
    value = header.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return parse_angle(value, hours_if_sexagesimal=hours_if_sexagesimal)
    except ValueError as exc:
        raise InvalidFits(filename, f"{key} is not a valid coordinate: {exc}") from None


def _site(header: CardHeader, key: str, filename: str) -> float | None:
    value = header.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return parse_angle(value, hours_if_sexagesimal=False)
    except ValueError as exc:
        raise InvalidFits(filename, f"{key} is not a valid site coordinate: {exc}") from None
