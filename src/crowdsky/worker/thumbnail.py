"""PNG previews of finished stacks, drawn by the stacking engine's thumbnail code.

The worker keeps the original signature ``generate_thumbnail(fits_path, output_path,
max_size=512)``; the engine owns reading the stack layout and stretching, so there
is one implementation for the worker and ``crowdsky stack``.

Published thumbnails are what the gallery shows, so the worker uses the engine's
automatic non-linear stretch (per-channel background removed, black point from the
noise, midtones set for faint structure). The original's linked 1st-99.5th percentile
stretch keeps a raw frame's sensor colour balance: on Seestar data the preview comes
out green with a grey-green sky. It stays available as ``stretch="linear"``.
"""

from __future__ import annotations

from pathlib import Path

from crowdsky.worker.errors import StackingFailed

DEFAULT_MAX_SIZE_PX = 512
DEFAULT_STRETCH = "auto"


def generate_thumbnail(
    fits_path: Path | str,
    output_path: Path | str,
    max_size: int = DEFAULT_MAX_SIZE_PX,
    stretch: str = DEFAULT_STRETCH,
) -> Path:
    """Write a PNG preview of a stacked FITS file.

    Parameters
    ----------
    fits_path
        The stack written by :func:`crowdsky.worker.stacking_adapter.stack_files`.
    output_path
        The PNG to write.
    max_size
        Longest side of the preview, pixels (aspect ratio kept).
    stretch
        ``"auto"`` (gallery default) or ``"linear"`` (the original's percentile stretch).

    Returns
    -------
    Path
        ``output_path``.

    Raises
    ------
    StackingFailed
        The stack could not be read or the PNG not written.
    """
    from crowdsky.stacking import StackingError
    from crowdsky.stacking import generate_thumbnail as engine_thumbnail

    try:
        return Path(
            engine_thumbnail(Path(fits_path), Path(output_path), max_size=max_size, stretch=stretch)
        )
    except (StackingError, OSError, ValueError) as exc:
        raise StackingFailed(f"thumbnail failed: {exc}") from exc
