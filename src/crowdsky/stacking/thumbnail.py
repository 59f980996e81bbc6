"""Previews of stacks: :func:`generate_thumbnail` (PNG, or JPEG for a ``.jpg`` name).

The image is shrunk before it is stretched, so noise is averaged first; with the
``'auto'`` stretch the preview's sky gradient and colour cast are removed first
(``background``). Only the preview changes, never the stack's planes. Rows are written
as stored (row 0 at the top), as the original worker did.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crowdsky.stacking import background, errors, io
from crowdsky.stacking import stretch as stretches

__all__ = ["generate_thumbnail"]


def generate_thumbnail(
    fits_path: Path | str,
    output_path: Path | str,
    max_size: int = 512,
    stretch: str = "linear",
) -> Path:
    """Write a PNG preview of a FITS image.

    Parameters
    ----------
    fits_path : Path or str
        Our stack, a 2-D image, a 3-plane (3 × H × W or H × W × 3) FITS or
        seestarpy's interleaved cube. A stack whose colours were calibrated against a
        catalogue (``COLCAL = T``) is balanced with its header's factors.
    output_path : Path or str
        PNG to write, or JPEG when the name ends in ``.jpg``/``.jpeg``
        (directories are created).
    max_size : int
        Longest side of the PNG in pixels (the image is never enlarged; shrunk with
        OpenCV's INTER_AREA, which averages instead of aliasing). The gallery uses
        512; 1024 with a ``.jpg`` name gives the lightbox's preview (JPEG quality 90).
    stretch : {'linear', 'auto'}
        ``'linear'``: the specification's 1–99.5 percentile stretch; ``'auto'``:
        sky gradient removed, colours neutralised, non-linear midtones stretch
        for the gallery.

    Returns
    -------
    Path
        ``output_path``.

    Raises
    ------
    InvalidInput
        Unreadable or non-image input, bad ``max_size`` or stretch.
    OutputError
        The PNG could not be written.
    """
    import cv2

    if stretch not in stretches.STRETCHES:
        raise errors.InvalidInput(
            f"unknown stretch {stretch!r}; expected one of {stretches.STRETCHES}"
        )
    if max_size < 1:
        raise errors.InvalidInput(f"max_size must be >= 1, got {max_size}")
    fits_path, output_path = Path(fits_path), Path(output_path)
    if not fits_path.is_file():
        raise errors.InvalidInput(f"{fits_path}: no such file")
    image = io.read_image_for_display(fits_path)
    rows, cols = image.shape[:2]
    valid = np.isfinite(image) if image.ndim == 2 else np.isfinite(image).all(axis=2)
    factor = min(1.0, max_size / max(rows, cols))
    if factor < 1.0:
        size = (max(1, round(cols * factor)), max(1, round(rows * factor)))
        filled = np.nan_to_num(image, nan=float(np.nanmedian(image[::4, ::4])))
        image = cv2.resize(filled, size, interpolation=cv2.INTER_AREA)
        covered = cv2.resize(valid.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        valid = covered > 0.999
    if stretch == "auto":
        image = background.remove_gradient(
            np.nan_to_num(image, nan=float(np.nanmedian(image))),
            valid,
            io.read_white_balance(fits_path),
        )
    pixels = stretches.stretch(image, stretch)
    if output_path.suffix.lower() in (".jpg", ".jpeg"):
        return io.write_jpeg(output_path, pixels)
    return io.write_png(output_path, pixels)
