"""Per-frame analysis for ``stack_files``: read a frame, repair its hot pixels, find its stars.

Owns :class:`FrameState`, what the engine knows of one input frame between the steps
of a stack, and the functions that fill it from the file. A frame that cannot be used
(unreadable, too few stars, a shape or colour layout unlike the majority's) is
rejected here with its reason; the later steps only read the states.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from crowdsky.stacking import debayer, detect, errors, io
from crowdsky.stacking.params import StackParams
from crowdsky.stacking.result import FrameRecord, RejectReason

__all__ = ["DETECTION_LADDER", "FrameState", "analyse", "reject_odd_shapes", "reload_mosaic"]

DETECTION_LADDER = (5.0, 4.0, 3.5, 3.0, 2.5, 2.0, 1.5)
"""Detection thresholds tried in turn (σ, within the parameters' range) until enough
stars are found: sparse 10 s frames need the low ones, crowded fields stop early."""


@dataclass(slots=True)
class FrameState:
    """One input frame between the steps of a stack; ``record`` is what the output keeps.

    Attributes
    ----------
    record : FrameRecord
        Measurements and fate of the frame, filled step by step.
    kind, pattern, shape, header
        From the file: ``'bayer'``, ``'mono'`` or ``'rgb'``, BAYERPAT, (rows, columns)
        and the primary header.
    pointing_deg, date_end
        Header RA/DEC and the end of the exposure (DATE-OBS + EXPTIME), for the
        output's header.
    image : ndarray or None
        The repaired mosaic, kept between analysis and warping when the memory budget
        allows (otherwise the frame is read again, see :func:`reload_mosaic`).
    xy, flux : ndarray or None
        Detected stars: native pixel positions (x, y) and fluxes.
    signature : tuple
        Shape and mono-ness: frames unlike the majority's are rejected.
    hot_pixels : tuple of ndarray or None
        Flat indices and values of the repaired pixels (None: not a raw mosaic).
    """

    record: FrameRecord
    kind: str = ""
    pattern: str | None = None
    shape: tuple[int, int] = (0, 0)
    header: object = None
    pointing_deg: tuple[float, float] | None = None
    date_end: datetime | None = None
    image: np.ndarray | None = None
    xy: np.ndarray | None = None
    flux: np.ndarray | None = None
    signature: tuple[object, ...] = ()
    hot_pixels: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n_channels(self) -> int:
        """Colour planes of the frame once warped: 1 for mono, else 3."""
        return 1 if self.kind == "mono" else 3


def analyse(state: FrameState, params: StackParams, keep_image: bool) -> None:
    """Read the frame, repair its hot pixels and detect its stars, or reject it.

    Thread-safe for distinct states (numpy, OpenCV and sep release the GIL).
    """
    rec = state.record
    try:
        frame, state.hot_pixels = _load_mosaic(rec.path, params)
    except errors.InvalidInput as exc:
        rec.reject(RejectReason.UNREADABLE, f"unreadable: {exc}")
        return
    state.kind, state.pattern, state.shape, state.header = (
        frame.kind,
        frame.bayer_pattern,
        frame.shape,
        frame.header,
    )
    state.signature = (frame.shape, frame.kind == "mono")
    state.pointing_deg, state.date_end = frame.pointing_deg, frame.date_end
    rec.date_obs, rec.exptime_s = frame.date_obs, frame.exptime_s
    lum_full = detect.channel_sum(frame.data) if frame.kind == "rgb" else frame.data
    lum = debayer.superpixel_luminance(lum_full)
    try:
        found = detect.find_stars(
            lum,
            sigmas=_detection_sigmas(params),
            target_stars=params.target_stars,
            max_stars=params.max_stars,
            binned_background=True,  # superpixels of a raw frame: independent noise
        )
    except errors.StackingError as exc:
        rec.reject(RejectReason.TOO_FEW_STARS, f"star detection failed: {exc}")
        return
    stars = found.stars
    rec.n_stars = int(stars.size)
    rec.background_adu, rec.noise_adu = found.background, found.noise
    rec.fwhm_px = 2.0 * found.median_fwhm if math.isfinite(found.median_fwhm) else None
    # superpixel (i, j) is centred on native (2i + 0.5, 2j + 0.5)
    state.xy = np.column_stack([2.0 * stars["x"] + 0.5, 2.0 * stars["y"] + 0.5])
    state.flux = stars["flux"].astype(np.float64)
    if rec.n_stars < params.min_stars:
        rec.reject(
            RejectReason.TOO_FEW_STARS,
            f"only {rec.n_stars} stars detected down to {found.threshold_sigma:g} sigma "
            f"(need {params.min_stars}): clouds, fog, hot pixels only, or no sky",
        )
        return
    if keep_image:
        state.image = frame.data


def reject_odd_shapes(states: list[FrameState]) -> None:
    """Reject the usable frames whose shape or colour layout differs from the majority's."""
    sigs = Counter(s.signature for s in states if s.record.reason is None)
    if len(sigs) <= 1:
        return
    majority, _ = sigs.most_common(1)[0]
    for s in states:
        if s.record.reason is None and s.signature != majority:
            s.record.reject(
                RejectReason.SHAPE_MISMATCH,
                f"image {s.shape} ({s.kind}) differs from the majority {majority[0]}",
            )
            s.image = None


def reload_mosaic(state: FrameState) -> np.ndarray:
    """Read a frame again for warping, with the hot-pixel repairs found in its
    analysis (finding them again cost more than the read)."""
    frame = io.read_frame(state.record.path)
    if frame.shape != state.shape or frame.kind != state.kind:
        raise errors.StackingError(
            f"{state.record.filename} changed on disk while it was being stacked"
        )
    if state.hot_pixels is not None:
        frame.data.reshape(-1)[state.hot_pixels[0]] = state.hot_pixels[1]
    return frame.data


def _detection_sigmas(params: StackParams) -> tuple[float, ...]:
    """The ladder's thresholds within [min_detect_sigma, detect_sigma], else detect_sigma."""
    ladder = tuple(
        s for s in DETECTION_LADDER if params.min_detect_sigma <= s <= params.detect_sigma
    )
    return ladder or (params.detect_sigma,)


def _load_mosaic(
    path: Path, params: StackParams
) -> tuple[io.RawFrame, tuple[np.ndarray, np.ndarray] | None]:
    """Read a frame and repair its hot pixels; also return the repairs (None when the
    frame has no raw mosaic to repair)."""
    frame = io.read_frame(path)
    if frame.kind == "bayer" or (frame.kind == "mono" and frame.data.dtype == np.uint16):
        fixes = debayer.find_hot_pixels(frame.data, params.hot_pixel_sigma)
        frame.data.reshape(-1)[fixes[0]] = fixes[1]
        return frame, fixes
    return frame, None
