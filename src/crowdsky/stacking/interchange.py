"""Interchange copies of a stack for the tools users already have (:func:`export_stack`).

Our product is a multi-extension FITS that later clients and science code read by
extension name, but Siril 1.0.6 refuses it ("Another image was found in the FITS file
but does not have the same parameters as the first one") and most desktop tools read
only the primary HDU. Both copies are built in memory: a server answers a download
with the whole body anyway.
"""

from __future__ import annotations

import io as _bytes_io
import os
from pathlib import Path
from typing import Any

import numpy as np

from crowdsky.stacking import errors
from crowdsky.stacking import io as stack_io

__all__ = ["FORMATS", "MEDIA_TYPES", "SUFFIXES", "export_stack", "write_export"]

FORMATS = ("cube", "tiff")
MEDIA_TYPES = {"cube": "application/fits", "tiff": "image/tiff"}
SUFFIXES = {"cube": ".fits", "tiff": ".tif"}
PLANES = ("RED", "GREEN", "BLUE")
ADU_MAX = 65535

_STRUCTURAL = frozenset(
    {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "BZERO", "BSCALE"}
)
_WCS_PREFIXES = (
    "WCSAXES",
    "CTYPE",
    "CUNIT",
    "CRVAL",
    "CRPIX",
    "CDELT",
    "CROTA",
    "CD1_",
    "CD2_",
    "PC1_",
    "PC2_",
    "LONPOLE",
    "LATPOLE",
    "RADESYS",
    "EQUINOX",
    "A_",
    "B_",
    "AP_",
    "BP_",
)


def export_stack(source: Path | str | bytes, fmt: str) -> bytes:
    """An interchange copy of a stack, as the bytes of the file.

    Parameters
    ----------
    source : Path, str or bytes
        Our multi-extension stack: a path, or the file's bytes (as a server holds a
        download).
    fmt : {'cube', 'tiff'}
        ``'cube'``: a FITS file whose PRIMARY HDU is the float32 RGB cube (NAXIS3 = 3,
        planes R, G, B) in the product's ADU, with the product's primary header and its
        celestial WCS when it has one; uncovered pixels are filled with their plane's
        median sky, so statistics and stretches stay finite, and listed in a ``MASK``
        image extension (uint8, 1 = filled). ``'tiff'``: a 16-bit RGB TIFF (grey for a
        mono stack, uncompressed) of the same filled pixels rounded to ADU and clipped
        to 0–65535 (the raw frames' range: nothing is rescaled), rows top-down as
        viewers display the FITS (whose row 0 is the bottom row).

    Returns
    -------
    bytes
        The whole file (media type ``MEDIA_TYPES[fmt]``).

    Raises
    ------
    InvalidInput
        Unknown format, or the source is not a CrowdSky stack.
    """
    if fmt not in FORMATS:
        raise errors.InvalidInput(f"unknown export format {fmt!r}; expected one of {FORMATS}")
    rgb, header = _read_product(source)
    covered = np.isfinite(rgb).all(axis=0)
    filled = _fill(rgb, covered)
    if fmt == "cube":
        return _cube_bytes(filled, covered, header)
    return _tiff_bytes(filled)


def write_export(source: Path | str, output: Path | str, fmt: str) -> Path:
    """Write :func:`export_stack` ``(source, fmt)`` to ``output``, atomically.

    Raises
    ------
    InvalidInput
        As :func:`export_stack`.
    OutputError
        The file could not be written.
    """
    data = export_stack(source, fmt)
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = stack_io.create_temporary(target)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise errors.OutputError(f"cannot write {target}: {exc}") from exc
    return target


def _read_product(source: Path | str | bytes) -> tuple[np.ndarray, Any]:
    """(3, H, W) float32 planes ((1, H, W) for a mono stack) and the primary header
    merged with the WCS cards found in the GREEN (or LUM) extension, where a solver
    may have put them."""
    from astropy.io import fits

    name = "stack" if isinstance(source, bytes) else Path(source).name
    opened: Any = _bytes_io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with fits.open(opened, memmap=False) as hdul:
            names = {hdu.name for hdu in hdul}
            planes = PLANES if set(PLANES) <= names else ("LUM",) if "LUM" in names else ()
            if not planes:
                raise errors.InvalidInput(
                    f"{name}: not a CrowdSky stack (no RED/GREEN/BLUE or LUM extensions)"
                )
            rgb = np.stack([np.asarray(hdul[p].data, dtype=np.float32) for p in planes])
            header = hdul[0].header.copy()
            for card in hdul[planes[len(planes) // 2]].header.cards:
                if card.keyword.startswith(_WCS_PREFIXES) and card.keyword not in header:
                    header.append(card)
    except errors.InvalidInput:
        raise
    except Exception as exc:  # astropy raises plain exceptions on garbage
        raise errors.InvalidInput(f"{name}: cannot read the stack ({exc})") from exc
    return rgb, header


def _fill(rgb: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Uncovered pixels set to their plane's median over covered pixels (0 if none)."""
    filled = rgb.copy()
    for plane in filled:
        values = plane[covered][::7]
        sky = float(np.median(values)) if values.size else 0.0
        plane[~covered] = sky
    return filled


def _cube_bytes(filled: np.ndarray, covered: np.ndarray, product_header: Any) -> bytes:
    from astropy.io import fits

    header = fits.Header()
    for card in product_header.cards:
        if card.keyword in _STRUCTURAL or card.keyword in ("", "COMMENT", "HISTORY"):
            continue
        header.append(card)
    if "CTYPE1" in header and "WCSAXES" not in header:
        # the WCS is celestial only: without this, readers would expect a third axis's
        # keywords (the planes are colours, not a coordinate)
        header.insert("CTYPE1", ("WCSAXES", 2, "celestial WCS of axes 1-2"))
    if len(filled) == 3:
        header["CHANNELS"] = ("RGB", "planes of axis 3: red, green, blue")
    header["BUNIT"] = ("adu", "data units: ADU of the reference frame")
    header["HISTORY"] = "CrowdSky interchange cube: primary image of the stack;"
    header["HISTORY"] = "uncovered pixels filled with the plane median, listed in MASK"
    pixels = filled if len(filled) == 3 else filled[0]
    primary = fits.PrimaryHDU(np.ascontiguousarray(pixels, dtype=np.float32), header=header)
    mask = fits.ImageHDU((~covered).astype(np.uint8), name="MASK")
    mask.header["COMMENT"] = "1 = no data: the pixel was filled with its plane's median sky"
    buffer = _bytes_io.BytesIO()
    fits.HDUList([primary, mask]).writeto(buffer, output_verify="exception")
    return buffer.getvalue()


def _tiff_bytes(filled: np.ndarray) -> bytes:
    import tifffile

    adu = np.clip(np.rint(filled), 0, ADU_MAX).astype(np.uint16)
    colour = len(adu) == 3
    top_down = np.ascontiguousarray((np.moveaxis(adu, 0, -1) if colour else adu[0])[::-1])
    buffer = _bytes_io.BytesIO()
    tifffile.imwrite(
        buffer,
        top_down,
        photometric="rgb" if colour else "minisblack",
        planarconfig="contig" if colour else None,
        software="CrowdSky",
        description="CrowdSky stack: linear RGB in ADU of the reference frame",
        metadata=None,
    )
    return buffer.getvalue()
