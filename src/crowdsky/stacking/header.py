"""The aggregated primary header of a stack.

Fixes every header error of the original (stacking.md §2.4): EXPTIME/EXPOSURE are the
sum over the frames actually stacked; DATE-OBS is the first stacked frame's start in
ISO 8601 with 'T' and DATE-END the last stacked frame's *end* (DATE-OBS + EXPTIME);
MJD-OBS/MJD-END and NCOMBINE are added, and the later clients' NIMAGES (frames
stacked), OBSTOTAL (frames of the block), OB-START and OB-END (= DATE-OBS, DATE-END);
RA/DEC are the circular mean of the stacked
frames' pointing; BAYERPAT is dropped (the data are demosaiced); the combination
and rejection parameters are the real ones (every :class:`StackParams` field, as
HIERARCH CROWDSKY keywords); the software name and version are recorded. No creation time is
written, so identical input gives a byte-identical file. Personal
data (SITELAT/SITELONG) are not copied.

The header is a :class:`crowdsky.stacking.fits_writer.Header` (astropy is not imported
to stack); input headers may be ``io.CardHeader``, ``fits_writer.Header`` or astropy's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from crowdsky.stacking import fits_writer

__all__ = ["build_primary_header", "circular_mean_deg", "mjd"]

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


def build_primary_header(
    used_headers: Sequence[Any],
    *,
    n_input: int,
    total_exptime: float,
    date_start: datetime | None,
    date_end: datetime | None,
    ra_deg: float | None,
    dec_deg: float | None,
    reference_name: str,
    params: dict[str, Any],
    n_stars: int,
    software_version: str,
    n_channels: int,
) -> Any:
    """Build the aggregated PRIMARY header.

    Parameters
    ----------
    used_headers : sequence of header objects
        Headers of the stacked frames, in input order (``io.CardHeader`` or astropy).
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
    params : dict
        StackParams fields.
    n_stars : int
        Stars in STAR-TAB.
    software_version : str
        ``crowdsky.__version__``.
    n_channels : int
        3 for RGB output.

    Returns
    -------
    crowdsky.stacking.fits_writer.Header
    """
    hdr = fits_writer.Header()
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
    hdr["IMAGETYP"] = ("Light", "stacked light frames")
    hdr["EXPTIME"] = (round(total_exptime, 6), "[s] total exposure of stacked frames")
    hdr["EXPOSURE"] = (round(total_exptime, 6), "[s] total exposure of stacked frames")
    hdr["NCOMBINE"] = (len(used_headers), "number of frames stacked")
    hdr["NINPUT"] = (n_input, "number of frames given to the stacker")
    hdr["NREJECT"] = (n_input - len(used_headers), "frames rejected (see FRAMES table)")
    # the later clients' names (clients.md): frames stacked / frames of the block
    hdr["NIMAGES"] = (len(used_headers), "number of frames stacked")
    hdr["OBSTOTAL"] = (n_input, "frames of the observation block")
    hdr["TIMESYS"] = ("UTC", "time scale of DATE-OBS, DATE-END")
    if date_start is not None:
        hdr["DATE-OBS"] = (_fits_time(date_start), "start of the first stacked exposure")
        hdr["MJD-OBS"] = (round(mjd(date_start), 9), "[d] MJD of DATE-OBS")
    if date_end is not None:
        hdr["DATE-END"] = (_fits_time(date_end), "end of the last stacked exposure")
        hdr["MJD-END"] = (round(mjd(date_end), 9), "[d] MJD of DATE-END")
    if date_start is not None:
        hdr["OB-START"] = (_fits_time(date_start), "observation block start (= DATE-OBS)")
    if date_end is not None:
        hdr["OB-END"] = (_fits_time(date_end), "observation block end (= DATE-END)")
    if date_start is not None and date_end is not None:
        hdr["TELAPSE"] = (
            round((date_end - date_start).total_seconds(), 3),
            "[s] DATE-END - DATE-OBS",
        )
    if ra_deg is not None and dec_deg is not None:
        hdr["RA"] = (round(ra_deg, 6), "[deg] mean pointing of stacked frames")
        hdr["DEC"] = (round(dec_deg, 6), "[deg] mean pointing of stacked frames")
    hdr["BUNIT"] = ("adu", "ADU of the reference frame")
    hdr["NCHANNEL"] = (n_channels, "colour planes (RED/GREEN/BLUE extensions)")
    hdr["REFFRAME"] = reference_name[
        :68
    ]  # the pixel grid's reference frame (no room for a comment)
    hdr["NSTARS"] = (n_stars, "stars in STAR-TAB")
    hdr["SWCREATE"] = (f"crowdsky {software_version}", "software that made this stack")
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
    return hdr
