"""Seestar S50 raw-file conventions: header keywords, file names, FITS bytes.

This module owns what makes a simulated file indistinguishable in layout from
one saved by the telescope (stacking reference §1): primary HDU only, BITPIX 16
with BZERO 32768, the keywords in the firmware's order, and the firmware's file
name with its *local* time stamp taken a little after the exposure started.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from astropy.io import fits

__all__ = [
    "FITS_BLOCK_BYTES",
    "SeestarHeader",
    "build_header",
    "quantize_temperature_c",
    "seestar_filename",
    "write_seestar_fits",
]

FITS_BLOCK_BYTES = 2880
# XPIXSZ/YPIXSZ are written by the firmware as the float32 value of 2.9 µm.
PIXEL_SIZE_UM = float(np.float32(2.9))
UINT16_ZERO = 32768


@dataclass(frozen=True)
class SeestarHeader:
    """Per-frame values of the Seestar header keywords.

    Attributes mirror the keywords; ``date_obs`` is the aware UTC exposure start.
    ``firmware`` goes to PROGRAM; ``eq_mode`` adds ``EQMODE = 1`` as newer
    firmware does in equatorial mode.
    """

    object_name: str
    date_obs: datetime
    exptime_s: float
    ra_deg: float
    dec_deg: float
    filter_name: str = "IRCUT"
    telescop: str = "S50_00c0ffee"
    ccd_temp_c: float = 25.0
    site_lon_deg: float = -80.0
    site_lat_deg: float = 33.0
    firmware: str = "4.27"
    eq_mode: bool = False
    gain: int = 80
    focus_pos: int = 1555
    instrume: str = "Seestar S50"
    creator: str = "ZWO Seestar S50"
    bayer_pattern: str = "GRBG"

    def __post_init__(self) -> None:
        if self.date_obs.tzinfo is None:
            raise ValueError("date_obs must be timezone-aware (UTC)")


def build_header(info: SeestarHeader, shape: tuple[int, int]) -> fits.Header:
    """Build the full primary header, structural cards first, in firmware order.

    Parameters
    ----------
    info : SeestarHeader
        Keyword values.
    shape : tuple of int
        Data shape (rows, columns): NAXIS2, NAXIS1.

    Returns
    -------
    astropy.io.fits.Header
        Header ready for :func:`write_seestar_fits`.
    """
    n_rows, n_cols = shape
    date_obs = info.date_obs.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    cards: list[tuple[str, object, str]] = [
        ("SIMPLE", True, "file does conform to FITS standard"),
        ("BITPIX", 16, "number of bits per data pixel"),
        ("NAXIS", 2, "number of data axes"),
        ("NAXIS1", n_cols, "length of data axis 1"),
        ("NAXIS2", n_rows, "length of data axis 2"),
        ("EXTEND", True, "FITS dataset may contain extensions"),
        ("BZERO", UINT16_ZERO, "offset data range to that of unsigned short"),
        ("BSCALE", 1, "default scaling factor"),
        ("CREATOR", info.creator, "Capture software"),
        ("PRODUCER", "ZWO", "Powered by ZWO"),
        ("XORGSUBF", 0, "Subframe X position in binned pixels"),
        ("YORGSUBF", 0, "Subframe Y position in binned pixels"),
        ("FOCALLEN", 250, "Focal length of telescope in mm"),
        ("APERTURE", 5.0, "Name of field of view aperture"),
    ]
    if info.eq_mode:
        cards.append(("EQMODE", 1, "Equatorial mode"))
    cards += [
        ("PROGRAM", info.firmware, "Firmware version of the capture software"),
        ("XBINNING", 1, "Camera X Bin"),
        ("YBINNING", 1, "Camera Y Bin"),
        ("CCDXBIN", 1, "Camera X Bin"),
        ("CCDYBIN", 1, "Camera Y Bin"),
        ("XPIXSZ", PIXEL_SIZE_UM, "pixel size in microns (with binning)"),
        ("YPIXSZ", PIXEL_SIZE_UM, "pixel size in microns (with binning)"),
        ("IMAGETYP", "Light", "Type of image"),
        ("EXPOSURE", float(info.exptime_s), "Exposure time in seconds"),
        ("EXPTIME", float(info.exptime_s), "Exposure time in seconds"),
        ("CCD-TEMP", float(info.ccd_temp_c), "sensor temperature in C"),
        ("RA", float(info.ra_deg), "Object Right Ascension in degrees"),
        ("DEC", float(info.dec_deg), "Object Declination in degrees"),
        ("SITELONG", float(info.site_lon_deg), "site longitude in degrees"),
        ("SITELAT", float(info.site_lat_deg), "site latitude in degrees"),
        ("DATE-OBS", date_obs, "Image created time"),
        ("FILTER", info.filter_name, "Filter used when taking image"),
        ("INSTRUME", info.instrume, "Camera model"),
        ("BAYERPAT", info.bayer_pattern, "Bayer pattern"),
        ("GAIN", int(info.gain), "Gain Value"),
        ("FOCUSPOS", int(info.focus_pos), "Focuser position in steps"),
        ("TELESCOP", info.telescop, "Telescope name"),
        ("OBJECT", info.object_name, "name or catalog number of object being imaged"),
        ("TOTALEXP", float(info.exptime_s), "Total Exposure Time in seconds"),
    ]
    header = fits.Header()
    for keyword, value, comment in cards:
        header.append(fits.Card(keyword, value, comment), end=True)
    return header


def seestar_filename(
    object_name: str,
    exptime_s: float,
    filter_name: str,
    date_obs: datetime,
    *,
    utc_offset_hours: float,
    stamp_delay_s: float = 13.0,
) -> str:
    """Return the firmware's file name for a sub.

    The time in the name is *local* time (UTC plus ``utc_offset_hours``) and is
    taken when the file is saved, ``stamp_delay_s`` after the exposure started
    (about 13 s on FW 4.27, 2.4 s on FW 2.76), which is why consumers must never
    derive times from names.

    Parameters
    ----------
    object_name : str
        Target name, spaces kept (``'M 94'``).
    exptime_s : float
        Exposure, seconds; written with one decimal (``10.0s``).
    filter_name : str
        ``'IRCUT'`` or ``'LP'``.
    date_obs : datetime
        Aware UTC exposure start.
    utc_offset_hours : float
        Local time minus UTC, hours (``-4`` for EDT).
    stamp_delay_s : float
        Seconds from exposure start to the time stamp in the name.

    Returns
    -------
    str
        E.g. ``'Light_M 94_10.0s_IRCUT_20250326-212046.fit'``.
    """
    local_zone = timezone(timedelta(hours=utc_offset_hours))
    stamp = (date_obs + timedelta(seconds=stamp_delay_s)).astimezone(local_zone)
    exposure = f"{exptime_s:.1f}"
    return f"Light_{object_name}_{exposure}s_{filter_name}_{stamp:%Y%m%d-%H%M%S}.fit"


def write_seestar_fits(path: Path, data: np.ndarray, header: fits.Header) -> None:
    """Write a uint16 frame exactly as the firmware lays it out, atomically.

    The bytes are produced directly (header blocks, then big-endian int16 =
    value − 32768, zero-padded to a 2880-byte block) instead of through
    ``HDUList.writeto``: it keeps the header order untouched and is several
    times faster, which matters for 300-frame benchmarks. The file appears
    under its final name only when complete, so a concurrent uploader never
    sees half a frame.

    Parameters
    ----------
    path : pathlib.Path
        Destination.
    data : numpy.ndarray
        2-D uint16 array.
    header : astropy.io.fits.Header
        Header from :func:`build_header` matching ``data.shape``.

    Raises
    ------
    ValueError
        If ``data`` is not 2-D uint16 or disagrees with the header.
    """
    if data.dtype != np.uint16 or data.ndim != 2:
        raise ValueError(f"expected a 2-D uint16 array, got {data.dtype} {data.shape}")
    if (header["NAXIS2"], header["NAXIS1"]) != data.shape:
        raise ValueError(
            f"header NAXIS2 x NAXIS1 = {header['NAXIS2']} x {header['NAXIS1']} "
            f"does not match data shape {data.shape}"
        )
    stored = (data ^ np.uint16(0x8000)).astype(">u2", copy=False)
    payload = stored.tobytes()
    padding = (-len(payload)) % FITS_BLOCK_BYTES
    path = Path(path)
    partial = path.with_name(f".{path.name}.part")
    with partial.open("wb") as handle:
        handle.write(header.tostring().encode("ascii"))
        handle.write(payload)
        handle.write(b"\0" * padding)
    os.replace(partial, path)


def quantize_temperature_c(value_c: float) -> float:
    """Round a temperature to the sensor's 1/16 °C steps, as real headers show."""
    return math.floor(value_c * 16.0 + 0.5) / 16.0
