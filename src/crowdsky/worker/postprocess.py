"""The post-processing job: a stack uploaded ready-made becomes one of ours.

``upload_stack.php`` queues a job of kind ``postprocess`` whose one "raw" file is the
uploaded stack (made on the telescope or on a desktop). :func:`normalise_stack`
validates it, measures its stars and writes our multi-extension product (PRIMARY
header only, float32 ``RED``/``GREEN``/``BLUE``, ``FOOTPRINT``, ``STAR-TAB``,
``FRAMES``), with the keywords the later clients read (``NIMAGES``, ``OB-START``,
``OB-END``, ``OBSTOTAL``, ``EXPTIME``). The job processor then makes our thumbnail,
publishes and completes the job exactly as for a stack of raw frames.

Accepted inputs: a colour cube (3 planes, as the Seestar writes its stacks), a Bayer
mosaic with ``BAYERPAT`` (demosaiced here) or a mono image (``LUM``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from crowdsky import __version__
from crowdsky.stacking import detect, io
from crowdsky.stacking.debayer import debayer
from crowdsky.stacking.header import StackFacts, build_primary_header
from crowdsky.worker.errors import StackingFailed

KIND = "postprocess"
#: Stars are detected at this many sky RMS, as on our own stacks.
STAR_SIGMA = 5.0
#: Keywords that may carry the number of frames in a foreign stack, in order of trust.
FRAME_COUNT_KEYWORDS = ("NIMAGES", "STACKCNT", "NCOMBINE")
SITE_KEYWORDS = ("SITELAT", "SITELONG", "SITEELEV")


@dataclass(frozen=True, slots=True)
class NormalisedStack:
    """What the job processor reports for a post-processed stack (a ``StackOutcome``)."""

    output_path: Path
    n_frames_input: int
    n_aligned: int
    n_stars_detected: int | None
    total_exptime: float
    date_obs_start: datetime | None
    date_obs_end: datetime | None
    ra_deg: float | None
    dec_deg: float | None


@dataclass(frozen=True, slots=True)
class _Observation:
    """What an uploaded stack's header says about the observation it holds."""

    n_frames: int
    exptime: float
    start: datetime | None
    end: datetime | None
    ra: float | None
    dec: float | None


def normalise_stack(
    paths: Sequence[Path],
    output_path: Path,
    *,
    progress: Callable[[float, str], None] | None = None,
) -> NormalisedStack:
    """Turn one uploaded stack into our FITS product at ``output_path``.

    Raises
    ------
    StackingFailed
        The file is not a usable stack (no image, wrong shape, unreadable).
    """
    if len(paths) != 1:
        raise StackingFailed(f"a post-processing job takes one stack, got {len(paths)} files")
    source = paths[0]
    data, header = _read_stack(source)
    image = _as_image(data, header, source.name)
    if progress is not None:
        progress(0.3, "stack read")
    coverage = np.where(np.isfinite(image if image.ndim == 2 else image[..., 1]), 1, 0)
    stars = detect.catalogue_stack(image, coverage.astype(np.uint16), 1, STAR_SIGMA)
    if progress is not None:
        progress(0.8, f"{len(stars)} stars measured")
    seen = _observation(header)
    for key in SITE_KEYWORDS:  # a site is personal data; only the raw upload may keep it
        header.remove(key, ignore_missing=True, remove_all=True)
    primary = _product_header(header, seen, source.name, len(stars), image.ndim)
    footprint = np.full(image.shape[:2], seen.n_frames, dtype=np.uint16)
    frames_table = {"filename": np.array([source.name]), "used": np.array([True])}
    try:
        io.write_stack(output_path, primary, image, footprint, stars, frames_table)
    except Exception as exc:
        raise StackingFailed(f"cannot write the normalised stack: {exc}") from exc
    return NormalisedStack(
        output_path=output_path,
        n_frames_input=seen.n_frames,
        n_aligned=seen.n_frames,
        n_stars_detected=len(stars),
        total_exptime=seen.exptime,
        date_obs_start=seen.start,
        date_obs_end=seen.end,
        ra_deg=seen.ra,
        dec_deg=seen.dec,
    )


def _read_stack(source: Path) -> tuple[np.ndarray, Any]:
    """The first image of the file as float32, and the primary header merged with its own."""
    from astropy.io import fits

    try:
        with fits.open(source, memmap=False) as hdul:
            hdu = next((h for h in hdul if h.is_image and h.data is not None), None)
            if hdu is None:
                raise StackingFailed(f"{source.name}: no image data")
            header = hdul[0].header.copy()
            if hdu is not hdul[0]:
                header.update((k, v) for k, v in hdu.header.items() if k not in header)
            return np.asarray(hdu.data, dtype=np.float32), header
    except (OSError, ValueError, TypeError) as exc:
        raise StackingFailed(f"{source.name}: not a readable FITS stack ({exc})") from exc


def _observation(header: Any) -> _Observation:
    exptime = _number(header.get("EXPTIME")) or _number(header.get("EXPOSURE")) or 0.0
    start = io.parse_date_obs(header.get("DATE-OBS"))
    end = io.parse_date_obs(header.get("DATE-END"))
    if start is not None and end is None and exptime:
        end = start + timedelta(seconds=exptime)
    return _Observation(
        n_frames=_frame_count(header),
        exptime=exptime,
        start=start,
        end=end,
        ra=_number(header.get("RA")),
        dec=_number(header.get("DEC")),
    )


def _product_header(
    header: Any, seen: _Observation, source_name: str, n_stars: int, image_ndim: int
) -> Any:
    """Our PRIMARY header for the uploaded stack, with the keywords the clients read."""
    n_frames = seen.n_frames
    facts = StackFacts(
        n_input=n_frames,
        total_exptime=seen.exptime,
        date_start=seen.start,
        date_end=seen.end,
        ra_deg=seen.ra,
        dec_deg=seen.dec,
        reference_name=source_name,
        n_stars=n_stars,
        n_channels=3 if image_ndim == 3 else 1,
        software_version=__version__,
    )
    primary = build_primary_header([header], facts, {"method": "uploaded", "rejection": "unknown"})
    # the uploaded stack counts as one input here; the frames it holds are what matter
    primary["NCOMBINE"] = (n_frames, "number of frames in the uploaded stack")
    primary["NIMAGES"] = (n_frames, "number of frames stacked")
    primary["NINPUT"] = (n_frames, "number of frames given to the stacker")
    primary["OBSTOTAL"] = (n_frames, "frames of the observation block")
    primary["NREJECT"] = (0, "frames rejected (unknown for an uploaded stack)")
    primary["ORIGFILE"] = source_name[:68]  # the uploaded file (no room for a comment)
    return primary


def _as_image(data: np.ndarray, header: Any, name: str) -> np.ndarray:
    """(H, W, 3) float32 RGB or (H, W) mono from a cube, a mosaic or a mono image."""
    if data.ndim == 3 and data.shape[0] == 3:
        return np.ascontiguousarray(np.moveaxis(data, 0, -1))
    if data.ndim == 3 and data.shape[-1] == 3:
        return np.ascontiguousarray(data)
    if data.ndim == 2:
        pattern = str(header.get("BAYERPAT", "")).strip().upper()
        if pattern:
            try:
                return np.ascontiguousarray(debayer(data, pattern), dtype=np.float32)
            except (ValueError, KeyError) as exc:
                raise StackingFailed(f"{name}: cannot demosaic BAYERPAT {pattern!r}") from exc
        return np.ascontiguousarray(data)
    raise StackingFailed(f"{name}: image of shape {data.shape} is neither RGB nor mono")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if np.isfinite(value) else None


def _frame_count(header: Any) -> int:
    for key in FRAME_COUNT_KEYWORDS:
        value = header.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 1
