"""PNG previews of finished stacks, drawn by the stacking engine's thumbnail code.

The worker keeps the original signature ``generate_thumbnail(fits_path, output_path,
max_size=512)``; the engine owns reading the stack layout and stretching, so there
is one implementation for the worker and ``crowdsky stack``. The default stretch is
the original's linear 1st-99.5th percentile one.
"""

from __future__ import annotations

from pathlib import Path

from crowdsky.worker.errors import StackingFailed

DEFAULT_MAX_SIZE_PX = 512
DEFAULT_STRETCH = "linear"


def generate_thumbnail(
    fits_path: Path | str,
    output_path: Path | str,
    max_size: int = DEFAULT_MAX_SIZE_PX,
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
            engine_thumbnail(
                Path(fits_path), Path(output_path), max_size=max_size, stretch=DEFAULT_STRETCH
            )
        )
    except (StackingError, OSError, ValueError) as exc:
        raise StackingFailed(f"thumbnail failed: {exc}") from exc
