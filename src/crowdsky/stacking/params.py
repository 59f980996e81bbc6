"""Parameters of the stacking engine: :class:`StackParams`, frozen and validated.

The engine reads no environment and no global state; everything that changes its
output is a field here and is written into the output header (``header.py``), so a
stack can be reproduced from its FITS file alone. Defaults are named constants and
were chosen on the real S50 M 94 frames and the simulator (see ``docs/benchmarks.md``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crowdsky.stacking import errors

__all__ = ["COMBINE_METHODS", "REJECTION_METHODS", "StackParams"]

COMBINE_METHODS = ("mean", "median")
REJECTION_METHODS = ("median-iqr", "none")
TRANSFORM_MODELS = ("similarity", "affine")
INTERPOLATIONS = ("cubic", "linear", "lanczos3", "lanczos4", "cubic-linear")
DEMOSAICS = ("cfa", "bilinear")
DEFAULT_INTERPOLATION = "lanczos3"
DEFAULT_SMOOTHING_PX = 0.35
WEIGHTINGS = ("quality", "noise", "none")

DEFAULT_MEMORY_LIMIT_BYTES = 768 * 1024 * 1024
"""Working memory the engine plans for, excluding the interpreter and imported libraries
(about 0.25 GB with numba's LLVM). With the default, 15 S50 frames stay in RAM as float32,
32 as float16, more stream through a scratch file; a process stays under 1 GB for any N."""


@dataclass(frozen=True, slots=True)
class StackParams:
    """Every knob of :func:`crowdsky.stacking.stack_files`.

    Parameters
    ----------
    method : {'mean', 'median'}
        Combination of the pixels that survive rejection. ``'mean'`` is weighted.
    sigma_clip : float
        Rejection threshold κ in robust standard deviations (both sides unless
        ``sigma_low``/``sigma_high`` are given); 0 or ``rejection='none'`` disables it.
    sigma_low, sigma_high : float or None
        Separate low/high thresholds; default ``sigma_clip``.
    rejection : {'median-iqr', 'none'}
        ``'median-iqr'``: iterative κσ clipping per pixel around the median, σ from the
        interquartile range, floored at the frames' measured background noise so small
        N neither over-rejects nor lets outliers inflate the scale (``combine.py``).
    max_clip_iterations : int
        Iterations of the clipping loop (it stops early when nothing changes).
    weighting : {'quality', 'noise', 'none'}
        ``'noise'``: inverse background variance after normalisation; ``'quality'``:
        that times (FWHM_ref / FWHM)², favouring sharp frames.
    normalize_scale : bool
        Scale frames to the reference's star fluxes (transparency) after subtracting
        their background; background offsets are always equalised.
    transform_model : {'similarity', 'affine'}
        Registration model fitted to matched stars.
    interpolation : {'lanczos3', 'cubic', 'linear', 'lanczos4', 'cubic-linear'}
        Warp kernel. Default ``'lanczos3'``: Lanczos-3 in the separable resampler
        (``resample``; green from both green lattices, so twice the vertical
        resolution), OpenCV's Lanczos-4 outside its domain. ``'cubic'`` is the
        previous default (~5 % softer stars on real S50 frames, 1.5× faster warp);
        ``'lanczos4'`` is OpenCV's, 3–5× slower; ``'cubic-linear'`` the mean of the
        cubic and bilinear warps.
    demosaic : {'cfa', 'bilinear'}
        How Bayer frames become RGB. ``'cfa'``: each colour is interpolated once,
        from its own sites, straight onto the reference grid (``warp.warp_bayer``).
        ``'bilinear'``: OpenCV's bilinear demosaic, then the warp (two
        interpolations, as the original engine did).
    smoothing_px : float
        σ in pixels of a Gaussian low-pass applied once to the combined image (NaN
        aware); 0 disables it. Interpolation smooths each frame by an amount that
        depends on its sub-pixel offset; a uniform low-pass afterwards lowers noise
        more per unit of star broadening. The default 0.35 px with Lanczos-3 gave,
        on real S50 frames, stars as sharp as Siril's at the same bright-star SNR
        (docs/benchmarks.md, issue 17); 0 gives the sharpest, noisiest stack.
    detect_sigma : float
        First detection threshold in background RMS on the 2×2 superpixel image; it
        is lowered step by step down to ``min_detect_sigma`` until ``target_stars``
        are found (sparse 10 s frames).
    min_detect_sigma : float
        Lowest detection threshold tried.
    target_stars : int
        Stars wanted per frame for matching.
    max_stars : int
        Brightest stars kept per frame.
    min_stars : int
        Fewer detected stars than this rejects the frame.
    min_matched_stars : int
        Fewer stars matched to the reference than this rejects the frame.
    min_matched_fraction : float
        Matched stars must also be at least this fraction of the smaller star list.
    max_residual_px : float
        RMS residual of the matched stars after the fit (native pixels) above which
        the frame is rejected.
    match_radius_px : float
        Radius (native pixels) within which a transformed star matches a reference star.
    max_scale_deviation : float
        Allowed ``|scale − 1|`` of the fitted transform.
    max_rotation_deg : float
        Allowed field rotation relative to the reference.
    min_transparency : float
        Matched-star flux ratio (frame / reference) below which a frame counts as
        cloud-covered and is rejected.
    max_fwhm_ratio : float
        FWHM relative to the reference above which a frame counts as trailed or
        defocused and is rejected.
    hot_pixel_sigma : float
        Cosmetic correction on the Bayer mosaic: a pixel this many noise σ above its
        3×3 median that is also an isolated peak is replaced; 0 disables it.
    memory_limit_bytes : int
        Working-memory budget. Aligned frames are kept in RAM as float32 when they fit,
        as float16 when that fits, else streamed through a float16 scratch file read
        back in row bands; the combine works in row bands sized from it.
    scratch_dir : Path or None
        Where a scratch file goes when needed (default: the output's directory).
    n_threads : int
        Threads for per-frame work and the combine kernel.
    stack_star_sigma : float
        Detection threshold for the catalogue of the final stack.
    """

    method: str = "mean"
    sigma_clip: float = 3.0
    sigma_low: float | None = None
    sigma_high: float | None = None
    rejection: str = "median-iqr"
    max_clip_iterations: int = 5
    weighting: str = "quality"
    normalize_scale: bool = True
    transform_model: str = "similarity"
    interpolation: str = DEFAULT_INTERPOLATION
    demosaic: str = "cfa"
    smoothing_px: float = DEFAULT_SMOOTHING_PX
    detect_sigma: float = 5.0
    min_detect_sigma: float = 2.5
    target_stars: int = 40
    max_stars: int = 150
    min_stars: int = 6
    min_matched_stars: int = 6
    min_matched_fraction: float = 0.2
    max_residual_px: float = 1.0
    match_radius_px: float = 3.0
    max_scale_deviation: float = 0.02
    max_rotation_deg: float = 45.0
    min_transparency: float = 0.5
    max_fwhm_ratio: float = 2.0
    hot_pixel_sigma: float = 8.0
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES
    scratch_dir: Path | None = None
    n_threads: int = 2
    stack_star_sigma: float = 5.0

    def __post_init__(self) -> None:
        choices = {
            "method": COMBINE_METHODS,
            "rejection": REJECTION_METHODS,
            "transform_model": TRANSFORM_MODELS,
            "interpolation": INTERPOLATIONS,
            "demosaic": DEMOSAICS,
            "weighting": WEIGHTINGS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise errors.InvalidInput(
                    f"StackParams.{name}={getattr(self, name)!r}: expected one of {allowed}"
                )
        for name in (
            "sigma_clip",
            "max_residual_px",
            "match_radius_px",
            "detect_sigma",
            "smoothing_px",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise errors.InvalidInput(f"StackParams.{name}={value!r}: must be finite and >= 0")
        if self.min_detect_sigma <= 0 or self.min_detect_sigma > self.detect_sigma:
            raise errors.InvalidInput("StackParams.min_detect_sigma must be in (0, detect_sigma]")
        if self.n_threads < 1:
            raise errors.InvalidInput("StackParams.n_threads must be >= 1")
        if self.memory_limit_bytes < 64 * 1024 * 1024:
            raise errors.InvalidInput("StackParams.memory_limit_bytes must be at least 64 MiB")
        if self.min_matched_stars < 3 or self.min_stars < 3:
            raise errors.InvalidInput("min_stars and min_matched_stars must be >= 3")
        if self.scratch_dir is not None and not isinstance(self.scratch_dir, Path):
            object.__setattr__(self, "scratch_dir", Path(self.scratch_dir))

    @property
    def kappa_low(self) -> float:
        """Lower rejection threshold in σ."""
        return self.sigma_clip if self.sigma_low is None else self.sigma_low

    @property
    def kappa_high(self) -> float:
        """Upper rejection threshold in σ."""
        return self.sigma_clip if self.sigma_high is None else self.sigma_high

    def replace(self, **changes: Any) -> StackParams:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe mapping of every field (paths as strings)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = str(value) if isinstance(value, Path) else value
        return out
