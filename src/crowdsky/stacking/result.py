"""Records the engine returns: :class:`StackResult`, one :class:`FrameRecord` per input
frame, and :class:`StackProgress` events for the progress callback.

Every input frame is accounted for: accepted frames carry their transform, metrics
and weight; rejected frames carry a human-readable ``reason`` and a machine-readable
``reason_code`` (:class:`RejectReason`). ``to_dict()`` gives JSON-safe dictionaries
for ``crowdsky stack --json`` and for the worker's ``complete_job`` metadata.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FrameRecord", "RejectReason", "StackProgress", "StackResult", "frames_table"]


class RejectReason(enum.StrEnum):
    """Why a frame was not stacked."""

    UNREADABLE = "unreadable"
    SHAPE_MISMATCH = "shape_mismatch"
    TOO_FEW_STARS = "too_few_stars"
    NO_MATCH = "no_match"
    TOO_FEW_MATCHES = "too_few_matches"
    LARGE_RESIDUAL = "large_residual"
    BAD_SCALE = "bad_scale"
    BAD_ROTATION = "bad_rotation"
    CLOUDS = "clouds"
    BLURRED = "blurred"


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, enum.Enum):
        return value.value
    return value


@dataclass(slots=True)
class FrameRecord:
    """What the engine did with one input frame.

    Attributes
    ----------
    path : Path
        The input file.
    index : int
        Position in the input list.
    accepted : bool
        True when the frame was stacked.
    reason : str or None
        Human-readable rejection reason (None when accepted).
    reason_code : RejectReason or None
        Machine-readable rejection reason.
    transform : list of list of float or None
        2×3 affine matrix mapping frame pixel coordinates (x = column, y = row) to
        reference pixel coordinates; None when the frame was not registered.
    n_stars : int
        Stars detected in the frame.
    n_matched : int
        Stars matched to the reference and used in the fit.
    residual_px : float or None
        RMS residual of the matched stars after the fit, native pixels.
    scale, rotation_deg : float or None
        Scale and rotation of ``transform``.
    fwhm_px : float or None
        Median FWHM of the frame's stars, native pixels.
    background_adu, noise_adu : float or None
        Sky level and sky noise of the frame's luminance (sum of a 2×2 Bayer cell).
    transparency : float or None
        Median flux ratio of matched stars, frame / reference.
    weight : float
        Relative weight in the combination (max 1; 0 when rejected).
    rejected_pixel_fraction : float or None
        Fraction of the frame's covered pixel values removed by pixel rejection.
    date_obs : datetime or None
        Exposure start (aware UTC), from DATE-OBS.
    exptime_s : float or None
        EXPTIME.
    is_reference : bool
        True for the reference frame.
    """

    path: Path
    index: int
    accepted: bool = False
    reason: str | None = None
    reason_code: RejectReason | None = None
    transform: list[list[float]] | None = None
    n_stars: int = 0
    n_matched: int = 0
    residual_px: float | None = None
    scale: float | None = None
    rotation_deg: float | None = None
    fwhm_px: float | None = None
    background_adu: float | None = None
    noise_adu: float | None = None
    transparency: float | None = None
    weight: float = 0.0
    rejected_pixel_fraction: float | None = None
    date_obs: datetime | None = None
    exptime_s: float | None = None
    is_reference: bool = False

    @property
    def filename(self) -> str:
        """The file name without directories."""
        return self.path.name

    def reject(self, code: RejectReason, reason: str) -> None:
        """Mark the frame rejected with a reason; clears any transform and weight."""
        self.accepted = False
        self.reason_code = code
        self.reason = reason
        self.transform = None
        self.weight = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary of every attribute plus ``filename``."""
        out = {name: _json_value(getattr(self, name)) for name in self.__slots__}
        out["filename"] = self.filename
        return out


@dataclass(slots=True)
class StackResult:
    """Outcome of :func:`crowdsky.stacking.stack_files`.

    Attributes
    ----------
    output_path : Path
        The written multi-extension FITS file.
    n_frames_input : int
        Number of input paths.
    n_aligned : int
        Frames actually stacked (registered, validated and not rejected).
    n_stars_detected : int or None
        Stars detected in the final stack.
    total_exptime : float
        Sum of EXPTIME over the **stacked** frames only, seconds (rejected frames do
        not add exposure to the result).
    date_obs_start : datetime or None
        Start of the first stacked exposure (aware UTC).
    date_obs_end : datetime or None
        End of the last stacked exposure: its DATE-OBS + EXPTIME (aware UTC).
    ra_deg, dec_deg : float or None
        Circular mean of the stacked frames' header pointing (RA/DEC keywords).
    frames : list of FrameRecord
        One record per input frame, in input order.
    reference_index : int or None
        Index of the reference frame.
    timings_s : dict
        Wall time per stage, seconds.
    scratch_bytes : int
        Bytes written to a scratch file (0 when the aligned frames fit in memory).
    storage : str
        Where aligned frames were kept: ``ram-float32``, ``ram-float16`` or ``disk-float16``.
    params : dict
        The parameters used.
    """

    output_path: Path
    n_frames_input: int
    n_aligned: int
    n_stars_detected: int | None
    total_exptime: float
    date_obs_start: datetime | None
    date_obs_end: datetime | None
    ra_deg: float | None
    dec_deg: float | None
    frames: list[FrameRecord] = field(default_factory=list)
    reference_index: int | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    scratch_bytes: int = 0
    storage: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rejected(self) -> int:
        """Frames not stacked."""
        return self.n_frames_input - self.n_aligned

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (datetimes ISO 8601, paths as strings, frames as dicts)."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if name == "frames":
                out[name] = [frame.to_dict() for frame in value]
            elif isinstance(value, dict):
                out[name] = {k: _json_value(v) for k, v in value.items()}
            else:
                out[name] = _json_value(value)
        return out


@dataclass(frozen=True, slots=True)
class StackProgress:
    """One progress event.

    Attributes
    ----------
    stage : str
        ``'analyse'``, ``'register'``, ``'warp'``, ``'combine'``, ``'catalogue'`` or ``'write'``.
    done, total : int
        Units finished and expected in this stage (frames, or row bands for ``combine``).
    message : str
        Short human-readable status.
    """

    stage: str
    done: int
    total: int
    message: str = ""


def frames_table(records: list[FrameRecord]) -> dict[str, np.ndarray]:
    """Columns of the output's FRAMES table: one row per input frame, NaN for missing."""

    def num(values: list[float | None]) -> np.ndarray:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)

    transforms = np.array(
        [np.ravel(r.transform) if r.transform is not None else np.full(6, np.nan) for r in records],
        dtype=np.float64,
    )
    return {
        "INDEX": np.array([r.index for r in records], dtype=np.int32),
        "FILENAME": np.array([r.filename for r in records]),
        "ACCEPTED": np.array([r.accepted for r in records], dtype=bool),
        "REFERENCE": np.array([r.is_reference for r in records], dtype=bool),
        "REASON_CODE": np.array([r.reason_code.value if r.reason_code else "" for r in records]),
        "REASON": np.array([r.reason or "" for r in records]),
        "DATE_OBS": np.array(
            [
                r.date_obs.isoformat(timespec="microseconds")[:26] if r.date_obs else ""
                for r in records
            ]
        ),
        "EXPTIME": num([r.exptime_s for r in records]),
        "N_STARS": np.array([r.n_stars for r in records], dtype=np.int32),
        "N_MATCHED": np.array([r.n_matched for r in records], dtype=np.int32),
        "RESIDUAL_PX": num([r.residual_px for r in records]),
        "SCALE": num([r.scale for r in records]),
        "ROTATION_DEG": num([r.rotation_deg for r in records]),
        "FWHM_PX": num([r.fwhm_px for r in records]),
        "BACKGROUND_ADU": num([r.background_adu for r in records]),
        "NOISE_ADU": num([r.noise_adu for r in records]),
        "TRANSPARENCY": num([r.transparency for r in records]),
        "WEIGHT": num([r.weight for r in records]),
        "REJECTED_FRACTION": num([r.rejected_pixel_fraction for r in records]),
        "TRANSFORM": transforms,
    }
