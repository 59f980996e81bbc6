"""File access of the stacking engine: reading input frames, writing the output MEF,
reading a stack back for thumbnails. No other stacking module touches files.

Reading
    Seestar subs are 16-bit FITS with BZERO = 32768 (uint16 data). The common case (a
    2-D primary image with BITPIX 16, BZERO 32768, BSCALE 1) is read directly: the
    header with the card reader of ``fits_header``, the data with one ``readinto``
    and an in-place byte swap and sign flip (≈ 1 ms instead of ≈ 8 ms through
    ``fits.open``), identical values.
    Anything else (float data, 3-plane cubes, extensions) goes through ``fits.open``.
    The Bayer pattern is taken from each file's own BAYERPAT.

Writing
    PRIMARY (header only, aggregated), RED/GREEN/BLUE float32 images, FOOTPRINT
    (uint16 count of frames covering each pixel), STAR-TAB and FRAMES binary tables.
    Written to a temporary name beside the target and renamed, so a crash never
    leaves a half-written stack under the final name.
"""

from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from crowdsky.stacking import errors, fits_header, kernels
from crowdsky.stacking.fits_header import CardHeader

__all__ = [
    "CardHeader",
    "RawFrame",
    "read_frame",
    "read_header",
    "read_image_for_display",
    "write_jpeg",
    "write_png",
    "write_stack",
]

BAYER_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")


@dataclass(slots=True)
class RawFrame:
    """One input frame as read from disk.

    Attributes
    ----------
    data : ndarray
        ``kind='bayer'`` or ``'mono'``: 2-D (uint16 or float32); ``kind='rgb'``:
        (H, W, 3) float32.
    kind : str
        ``'bayer'``, ``'mono'`` or ``'rgb'``.
    bayer_pattern : str or None
        Four-letter BAYERPAT for ``kind='bayer'``.
    header : CardHeader or astropy.io.fits.Header
        The primary header (both offer ``get`` and ``in``).
    """

    data: np.ndarray
    kind: str
    bayer_pattern: str | None
    header: Any

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape (rows, columns)."""
        return (int(self.data.shape[0]), int(self.data.shape[1]))

    @property
    def exptime_s(self) -> float | None:
        """EXPTIME (or EXPOSURE) in seconds."""
        for key in ("EXPTIME", "EXPOSURE"):
            value = self.header.get(key)
            if isinstance(value, int | float) and math.isfinite(value):
                return float(value)
        return None

    @property
    def date_obs(self) -> datetime | None:
        """DATE-OBS as an aware UTC datetime (FITS times are UTC)."""
        return parse_date_obs(self.header.get("DATE-OBS"))

    @property
    def date_end(self) -> datetime | None:
        """DATE-OBS + EXPTIME."""
        start, exptime = self.date_obs, self.exptime_s
        if start is None:
            return None
        return start + timedelta(seconds=exptime or 0.0)

    @property
    def pointing_deg(self) -> tuple[float, float] | None:
        """Header RA/DEC in degrees (mount pointing on Seestars), if present."""
        ra, dec = self.header.get("RA"), self.header.get("DEC")
        if isinstance(ra, int | float) and isinstance(dec, int | float):
            return float(ra), float(dec)
        return None


def parse_date_obs(value: object) -> datetime | None:
    """Parse a FITS DATE-OBS string (ISO 8601, 'T' or space) into aware UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace(" ", "T")
    if text.endswith("Z"):
        text = text[:-1]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def read_header(path: Path) -> CardHeader:
    """Read only the primary header of a FITS file (``fits_header``'s card reader).

    Raises
    ------
    InvalidInput
        The file cannot be read or does not start with a complete FITS header.
    """
    try:
        with open(path, "rb") as handle:
            header = fits_header.read_header(handle)
    except OSError as exc:
        raise errors.InvalidInput(f"{path}: cannot read FITS header ({exc})") from exc
    if header is None:
        raise errors.InvalidInput(f"{path}: cannot read FITS header (no SIMPLE ... END)")
    return header


def read_frame(path: Path) -> RawFrame:
    """Read one input frame.

    Parameters
    ----------
    path : Path
        A FITS file: a Bayer mosaic (BAYERPAT set), a mono image, or an RGB cube
        (3 × H × W, or H × W × 3 as seestarpy wrote it).

    Returns
    -------
    RawFrame

    Raises
    ------
    InvalidInput
        The file is not FITS, has no image, or has an unsupported shape; the message
        names the file and the problem.
    """
    data = None
    header: Any = None
    try:
        with open(path, "rb") as handle:
            # the shared card reader, not astropy: ~0.1 ms a frame and no 0.2 s import
            header = fits_header.read_header(handle)
            if header is not None:
                data = _read_fast_uint16(handle, header)
    except OSError as exc:
        raise errors.InvalidInput(f"{path.name}: cannot read ({exc})") from exc
    if data is None:
        from astropy.io import fits

        try:
            with fits.open(path, memmap=False) as hdul:
                header = hdul[0].header
                hdu = next((h for h in hdul if h.is_image and h.data is not None), None)
                if hdu is None:
                    raise errors.InvalidInput(f"{path.name}: no image data in any HDU")
                data = np.asarray(hdu.data)
                if hdu is not hdul[0]:
                    merged = header.copy()
                    merged.update(hdu.header)
                    header = merged
                header = header.copy()
        except errors.InvalidInput:
            raise
        except Exception as exc:  # astropy raises plain exceptions on garbage
            raise errors.InvalidInput(f"{path.name}: not a readable FITS image ({exc})") from exc
    return _classify(path, data, header)


def _read_fast_uint16(handle: Any, header: Any) -> np.ndarray | None:
    """The Seestar layout read without astropy's scaling machinery, or None if not it."""
    if not (
        header.get("NAXIS") == 2
        and header.get("BITPIX") == 16
        and header.get("BZERO") == 32768
        and header.get("BSCALE", 1) == 1
        and "BLANK" not in header
    ):
        return None
    rows, cols = int(header["NAXIS2"]), int(header["NAXIS1"])
    data = np.empty((rows, cols), dtype=np.uint16)
    view = data.data.cast("B")
    if handle.readinto(view) != data.nbytes:
        return None
    decoder = kernels.loaded("mosaic_kernels") if np.little_endian else None
    if decoder is not None:  # one GIL release instead of two (mosaic_kernels)
        decoder.decode_be_uint16(data)
        return data
    if np.little_endian:
        data.byteswap(inplace=True)
    data ^= np.uint16(0x8000)  # int16 + 32768 == uint16 with the sign bit flipped
    return data


def _classify(path: Path, data: np.ndarray, header: Any) -> RawFrame:
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[0] == 3:
        rgb = np.ascontiguousarray(np.moveaxis(data, 0, -1), dtype=np.float32)
        return RawFrame(rgb, "rgb", None, header)
    if data.ndim == 3 and data.shape[-1] == 3:
        return RawFrame(np.ascontiguousarray(data, dtype=np.float32), "rgb", None, header)
    if data.ndim != 2:
        raise errors.InvalidInput(
            f"{path.name}: unsupported image shape {data.shape} (expected 2-D, 3×H×W or H×W×3)"
        )
    if data.shape[0] < 64 or data.shape[1] < 64:
        raise errors.InvalidInput(f"{path.name}: image {data.shape} is too small to stack")
    pattern = str(header.get("BAYERPAT", "") or "").strip().upper()
    if pattern:
        if pattern not in BAYER_PATTERNS:
            raise errors.InvalidInput(
                f"{path.name}: unsupported BAYERPAT {pattern!r} (expected one of {BAYER_PATTERNS})"
            )
        if data.dtype != np.uint16:
            data = np.clip(np.nan_to_num(data), 0, 65535).astype(np.uint16)
        return RawFrame(np.ascontiguousarray(data), "bayer", pattern, header)
    if data.dtype != np.uint16:
        data = np.ascontiguousarray(data, dtype=np.float32)
    return RawFrame(data, "mono", None, header)


def write_stack(
    path: Path,
    primary_header: Any,
    image: np.ndarray,
    footprint: np.ndarray,
    stars: np.ndarray,
    frames_table: dict[str, np.ndarray],
) -> int:
    """Write the output multi-extension FITS atomically (``fits_writer``: no astropy).

    Parameters
    ----------
    path : Path
        Target file; its directory must exist or be creatable.
    primary_header : fits_writer.Header or astropy.io.fits.Header
        Aggregated header for the data-less PRIMARY HDU (an astropy header's cards
        are written as astropy formats them).
    image : ndarray
        (H, W, 3) float32 RGB or (H, W) float32 mono.
    footprint : ndarray
        (H, W) uint16 number of frames covering each pixel.
    stars : ndarray
        Structured array for STAR-TAB.
    frames_table : dict of str to ndarray
        Columns of the FRAMES table.

    Returns
    -------
    int
        Bytes written.

    Raises
    ------
    OutputError
        The file could not be written.
    """
    from crowdsky.stacking import fits_writer

    if isinstance(primary_header, fits_writer.Header):
        primary: fits_writer.Header | fits_writer.HeaderCards = primary_header
    else:  # astropy.io.fits.Header
        primary = fits_writer.HeaderCards([card.image for card in primary_header.cards])
    hdus = _product_extensions(image, footprint, stars, frames_table)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = create_temporary(path)
    try:
        fd = os.open(tmp, os.O_WRONLY)
        try:
            size = fits_writer.write_file(fd, primary, hdus, parallel=WRITE_THREADS)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise errors.OutputError(f"cannot write {path}: {exc}") from exc
    return size


WRITE_THREADS = 2
"""Threads converting and writing the image extensions (numpy and pwrite release the GIL)."""


def _product_extensions(
    image: np.ndarray,
    footprint: np.ndarray,
    stars: np.ndarray,
    frames_table: dict[str, np.ndarray],
) -> list[Any]:
    """The product's extensions in order: the colour planes (or LUM), FOOTPRINT,
    STAR-TAB and FRAMES, as ``fits_writer`` HDUs."""
    from crowdsky.stacking import fits_writer

    planes = (
        [("RED", image[..., 0]), ("GREEN", image[..., 1]), ("BLUE", image[..., 2])]
        if image.ndim == 3
        else [("LUM", image)]
    )
    hdus: list[fits_writer.ImageHDU | fits_writer.TableHDU] = [
        fits_writer.ImageHDU(
            name,
            plane if plane.dtype == np.float32 else plane.astype(np.float32),
            (
                ("CHANNEL", channel, "colour plane index"),
                ("BUNIT", "adu", "data units: ADU of the reference frame"),
            ),
        )
        for channel, (name, plane) in enumerate(planes)
    ]
    hdus.append(
        fits_writer.ImageHDU(
            "FOOTPRINT",
            footprint.astype(np.uint16, copy=False),
            (("BUNIT", "count", "frames covering each pixel"),),
        )
    )
    hdus.append(
        fits_writer.TableHDU(
            "STAR-TAB",
            [(name, stars[name]) for name in stars.dtype.names or ()],
            (("COMMENT", "x, y: 0-based pixel coordinates (column, row) of the stack", ""),),
        )
    )
    hdus.append(
        fits_writer.TableHDU("FRAMES", [_table_column(k, v) for k, v in frames_table.items()])
    )
    return hdus


def create_temporary(path: Path) -> Path:
    """Create an empty, unique hidden file beside ``path`` with the umask's mode.

    ``tempfile.mkstemp`` always creates mode 0600, so a stack renamed into place was
    unreadable by a web server or another user; ``os.open`` with 0666 lets the
    process's umask decide, like any ordinary file the process creates.
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise errors.OutputError(f"cannot create a file beside {path}: {exc}") from exc
        os.close(fd)
        return tmp
    raise errors.OutputError(f"cannot create a unique temporary file beside {path}")


def _table_column(name: str, values: np.ndarray) -> tuple[str, np.ndarray]:
    """A FRAMES column as stored: ASCII strings, bools, int32 (any integer), float64
    (any other number; 2-D arrays as fixed-size vector cells)."""
    values = np.asarray(values)
    if values.dtype.kind in "USb":
        return name, values
    if values.ndim == 2:
        return name, values.astype(np.float64)
    if values.dtype.kind in "iu":
        return name, values.astype(np.int32)
    return name, values.astype(np.float64)


def read_white_balance(path: Path) -> tuple[float, float, float] | None:
    """The preview white balance of a colour-calibrated stack (``COLCAL = T`` with
    ``WBR``/``WBG``/``WBB`` in the primary header), or None."""
    from astropy.io import fits

    try:
        header = fits.getheader(path, 0)
    except Exception:  # the image reader reports unreadable files
        return None
    if header.get("COLCAL") is not True:
        return None
    try:
        factors = tuple(float(header[key]) for key in ("WBR", "WBG", "WBB"))
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(f) and f > 0 for f in factors):
        return None
    return factors  # type: ignore[return-value]


def read_image_for_display(path: Path) -> np.ndarray:
    """Read a stack or image for display: (H, W, 3) or (H, W) float32.

    Understands our output (RED/GREEN/BLUE extensions), a 2-D image, a 3 × H × W cube
    and seestarpy 0.1.3's pixel-interleaved H × W × 3 primary array. The first HDU with
    image data is used otherwise.

    Raises
    ------
    InvalidInput
        No displayable image in the file.
    """
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            names = {hdu.name for hdu in hdul}
            if {"RED", "GREEN", "BLUE"} <= names:
                return np.stack(
                    [np.asarray(hdul[n].data, dtype=np.float32) for n in ("RED", "GREEN", "BLUE")],
                    axis=-1,
                )
            hdu = next((h for h in hdul if h.is_image and h.data is not None), None)
            if hdu is None:
                raise errors.InvalidInput(f"{path.name}: no image data to display")
            data = np.asarray(hdu.data, dtype=np.float32)
    except errors.InvalidInput:
        raise
    except Exception as exc:
        raise errors.InvalidInput(f"{path.name}: cannot read FITS image ({exc})") from exc
    if data.ndim == 3 and data.shape[0] == 3:
        return np.ascontiguousarray(np.moveaxis(data, 0, -1))
    if data.ndim == 3 and data.shape[-1] == 3:
        return data
    if data.ndim == 3:
        first: np.ndarray = data[0]
        return first
    if data.ndim != 2:
        raise errors.InvalidInput(f"{path.name}: cannot display an image of shape {data.shape}")
    return data


def write_png(path: Path, pixels: np.ndarray) -> Path:
    """Write an 8-bit (H, W) or (H, W, 3) array as PNG (Pillow), atomically."""
    return _write_picture(path, pixels, format="PNG", optimize=False)


JPEG_QUALITY = 90


def write_jpeg(path: Path, pixels: np.ndarray) -> Path:
    """Write an 8-bit (H, W) or (H, W, 3) array as JPEG (Pillow, quality 90), atomically."""
    return _write_picture(path, pixels, format="JPEG", quality=JPEG_QUALITY)


def _write_picture(path: Path, pixels: np.ndarray, **options: Any) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(tmp, **options)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise errors.OutputError(f"cannot write {path}: {exc}") from exc
    return path
