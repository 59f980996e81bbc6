"""The aggregated primary header of a stack: what was stacked, when, where and how.

Exposure and times describe the frames actually stacked (DATE-END is the last one's
end), with the later clients' names beside ours; every :class:`StackParams` field is
recorded as a HIERARCH CROWDSKY keyword. No creation time is written, so identical
input gives a byte-identical file, and personal data (SITELAT/SITELONG) are not copied.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crowdsky.stacking import fits_writer

__all__ = ["StackFacts", "build_primary_header", "circular_mean_deg", "mjd"]

COPIED_KEYWORDS = (
    "OBJECT",
    "INSTRUME",
    "TELESCOP",
    "FILTER",
    "FOCALLEN",
    "APERTURE",
    "XPIXSZ",
    "YPIXSZ",
    "XBINNING",
    "YBINNING",
    "CREATOR",
    "PROGRAM",
    "EQMODE",
)
MJD_EPOCH = datetime(1858, 11, 17, tzinfo=UTC)


def mjd(moment: datetime) -> float:
    """Modified Julian Date of an aware datetime (UTC scale)."""
    return (moment - MJD_EPOCH).total_seconds() / 86400.0


def circular_mean_deg(angles: Sequence[float]) -> float | None:
    """Mean of angles in degrees on the circle (RA near 0/360 averages correctly)."""
    if not angles:
        return None
    rad = [math.radians(a) for a in angles]
    s = sum(math.sin(a) for a in rad)
    c = sum(math.cos(a) for a in rad)
    if abs(s) < 1e-12 and abs(c) < 1e-12:
        return None
    return math.degrees(math.atan2(s, c)) % 360.0


def _comment(header: Any, key: str) -> str:
    """The comment of ``key`` in one of the header types the engine meets."""
    comment = getattr(header, "comment", None)
    if callable(comment):  # io.CardHeader, fits_writer.Header
        return str(comment(key))
    return str(header.comments[key])  # astropy.io.fits.Header


def _fits_time(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


@dataclass(frozen=True, kw_only=True)
class StackFacts:
    """What the header says about a stack beyond its frames' own headers.

    Attributes
    ----------
    n_input : int
        Frames given to the engine.
    total_exptime : float
        Sum of EXPTIME over stacked frames, seconds.
    date_start, date_end : datetime or None
        First start and last end of the stacked exposures.
    ra_deg, dec_deg : float or None
        Pointing of the result.
    reference_name : str
        File name of the reference frame.
    n_stars : int
        Stars in STAR-TAB.
    n_channels : int
        3 for RGB output.
    software_version : str
        ``crowdsky.__version__``.
    """

    n_input: int
    total_exptime: float
    date_start: datetime | None
    date_end: datetime | None
    ra_deg: float | None
    dec_deg: float | None
    reference_name: str
    n_stars: int
    n_channels: int
    software_version: str


def build_primary_header(
    used_headers: Sequence[Any], facts: StackFacts, params: dict[str, Any]
) -> fits_writer.Header:
    """Build the aggregated PRIMARY header.

    Parameters
    ----------
    used_headers : sequence of header objects
        Headers of the stacked frames, in input order (``io.CardHeader`` or astropy).
    facts : StackFacts
        Counts, times, pointing and provenance of the stack.
    params : dict
        StackParams fields.

    Returns
    -------
    crowdsky.stacking.fits_writer.Header
    """
    hdr = fits_writer.Header()
    _copy_frame_keywords(hdr, used_headers)
    _add_exposure(hdr, facts, len(used_headers))
    _add_times(hdr, facts.date_start, facts.date_end)
    if facts.ra_deg is not None and facts.dec_deg is not None:
        hdr["RA"] = (round(facts.ra_deg, 6), "[deg] mean pointing of stacked frames")
        hdr["DEC"] = (round(facts.dec_deg, 6), "[deg] mean pointing of stacked frames")
    hdr["BUNIT"] = ("adu", "ADU of the reference frame")
    hdr["NCHANNEL"] = (facts.n_channels, "colour planes (RED/GREEN/BLUE extensions)")
    # the pixel grid's reference frame (no room for a comment)
    hdr["REFFRAME"] = facts.reference_name[:68]
    hdr["NSTARS"] = (facts.n_stars, "stars in STAR-TAB")
    hdr["SWCREATE"] = (f"crowdsky {facts.software_version}", "software that made this stack")
    _add_parameters(hdr, params)
    return hdr


def _copy_frame_keywords(hdr: fits_writer.Header, used_headers: Sequence[Any]) -> None:
    """The first frame's descriptive keywords; the most common gain, the mean temperature."""
    first = used_headers[0] if used_headers else fits_writer.Header()
    for key in COPIED_KEYWORDS:
        if key in first:
            value = first[key]
            if isinstance(value, str):
                value = value.strip()
            if not isinstance(value, str | int | float):  # an undefined value
                continue
            hdr[key] = (value, _comment(first, key) or None)
    if "CREATOR" in hdr:
        hdr.rename_keyword("CREATOR", "ORIGCREA")
    gains = [h.get("GAIN") for h in used_headers if isinstance(h.get("GAIN"), int | float)]
    if gains:
        hdr["GAIN"] = (Counter(gains).most_common(1)[0][0], "most common sensor gain setting")
    temps = [h.get("CCD-TEMP") for h in used_headers if isinstance(h.get("CCD-TEMP"), int | float)]
    if temps:
        hdr["CCD-TEMP"] = (round(sum(temps) / len(temps), 2), "[C] mean sensor temperature")


def _add_exposure(hdr: fits_writer.Header, facts: StackFacts, n_used: int) -> None:
    """Exposure and frame counts, under our names and the later clients' (clients.md)."""
    hdr["IMAGETYP"] = ("Light", "stacked light frames")
    hdr["EXPTIME"] = (round(facts.total_exptime, 6), "[s] total exposure of stacked frames")
    hdr["EXPOSURE"] = (round(facts.total_exptime, 6), "[s] total exposure of stacked frames")
    hdr["NCOMBINE"] = (n_used, "number of frames stacked")
    hdr["NINPUT"] = (facts.n_input, "number of frames given to the stacker")
    hdr["NREJECT"] = (facts.n_input - n_used, "frames rejected (see FRAMES table)")
    hdr["NIMAGES"] = (n_used, "number of frames stacked")
    hdr["OBSTOTAL"] = (facts.n_input, "frames of the observation block")


def _add_times(hdr: fits_writer.Header, start: datetime | None, end: datetime | None) -> None:
    """DATE-OBS/-END with their MJDs, the clients' OB-START/-END, and the elapsed time."""
    hdr["TIMESYS"] = ("UTC", "time scale of DATE-OBS, DATE-END")
    if start is not None:
        hdr["DATE-OBS"] = (_fits_time(start), "start of the first stacked exposure")
        hdr["MJD-OBS"] = (round(mjd(start), 9), "[d] MJD of DATE-OBS")
    if end is not None:
        hdr["DATE-END"] = (_fits_time(end), "end of the last stacked exposure")
        hdr["MJD-END"] = (round(mjd(end), 9), "[d] MJD of DATE-END")
    if start is not None:
        hdr["OB-START"] = (_fits_time(start), "observation block start (= DATE-OBS)")
    if end is not None:
        hdr["OB-END"] = (_fits_time(end), "observation block end (= DATE-END)")
    if start is not None and end is not None:
        hdr["TELAPSE"] = (round((end - start).total_seconds(), 3), "[s] DATE-END - DATE-OBS")


def _add_parameters(hdr: fits_writer.Header, params: dict[str, Any]) -> None:
    """The combination and rejection actually used, and every parameter as HIERARCH."""
    hdr["STACKMET"] = (params.get("method", "mean"), "combination of surviving pixels")
    hdr["REJECTMT"] = (params.get("rejection", ""), "pixel rejection algorithm")
    for name, value in params.items():
        key = f"HIERARCH CROWDSKY {name.upper().replace('_', ' ')}"
        if value is None:
            value = "none"
        elif isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        elif isinstance(value, str) and len(value) > 40:
            value = value[:40]
        hdr[key] = value
