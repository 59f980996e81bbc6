"""Which frames a stack uses: the reference, chosen by quality, and each frame screened on it.

A frame is used when its stars match the reference's under a valid transform
(``register``), clouds have not dimmed it (transparency) and it is not blurred
(FWHM); otherwise its record says why. :class:`Matches` matches each pair of frames
once: choosing the reference and screening ask for the same pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from crowdsky.stacking import quality, register
from crowdsky.stacking.analysis import FrameState
from crowdsky.stacking.params import StackParams
from crowdsky.stacking.result import FrameRecord, RejectReason

__all__ = ["Matches", "choose_reference", "register_all", "usable"]


class Matches:
    """Star matches between pairs of analysed frames and their validation, each pair once."""

    def __init__(self, frames: list[FrameState], params: StackParams) -> None:
        self.frames = frames
        self.params = params
        self._found: dict[tuple[int, int], register.Registration | None] = {}

    def between(
        self, i: int, j: int, prior: np.ndarray | None = None
    ) -> register.Registration | None:
        """Frame ``i``'s stars matched to frame ``j``'s; ``prior``, a first hypothesis
        of the transform, only orders the search of a pair not matched yet."""
        if (i, j) not in self._found:
            src, ref = self.frames[i].xy, self.frames[j].xy
            assert src is not None and ref is not None
            self._found[(i, j)] = register.match_stars(
                src,
                ref,
                radius_px=self.params.match_radius_px,
                model=self.params.transform_model,
                min_matches=self.params.min_matched_stars,
                prior=prior,
            )
        return self._found[(i, j)]

    def problem(self, i: int, j: int) -> tuple[RejectReason, str] | None:
        """Why frame ``i`` cannot be registered onto frame ``j``, or None."""
        params = self.params
        return register.validate(
            self.between(i, j),
            n_src=len(self.frames[i].xy),  # type: ignore[arg-type]
            n_ref=len(self.frames[j].xy),  # type: ignore[arg-type]
            min_matched=params.min_matched_stars,
            min_fraction=params.min_matched_fraction,
            max_residual_px=params.max_residual_px,
            max_scale_deviation=params.max_scale_deviation,
            max_rotation_deg=params.max_rotation_deg,
        )


def usable(frames: list[FrameState]) -> list[FrameState]:
    """The frames not rejected so far."""
    return [s for s in frames if s.record.reason is None]


def choose_reference(frames: list[FrameState], matches: Matches) -> FrameState | None:
    """The best-scoring usable frame that enough others register onto (marked as the
    reference), or None when there is none."""
    candidates = usable(frames)
    if not candidates:
        return None
    scores = np.zeros(len(frames))
    # normalise scores against the usable population, not frame by frame
    idx = [s.record.index for s in candidates]
    scores[idx] = quality.frame_scores(
        np.array([frames[i].record.n_stars for i in idx]),
        np.array([frames[i].record.fwhm_px for i in idx], dtype=float),
        np.array([frames[i].record.noise_adu for i in idx], dtype=float),
    )
    ref_index = quality.choose_reference(scores, lambda i, j: matches.problem(i, j) is None)
    if ref_index is None:
        return None
    ref = frames[ref_index]
    ref.record.is_reference = True
    return ref


def register_all(
    frames: list[FrameState],
    ref: FrameState,
    matches: Matches,
    on_frame: Callable[[int, int, str], None],
) -> None:
    """Register every usable frame onto ``ref`` and accept or reject it, in input
    order; ``on_frame(done, total, file name)`` after each."""
    candidates = usable(frames)
    prior: np.ndarray | None = None
    for k, s in enumerate(candidates, start=1):
        rec = s.record
        if s is ref:
            _accept_reference(rec)
        else:
            # consecutive frames drift slowly: the last accepted transform is a good
            # first hypothesis (it only orders the search; the fit is the same)
            _screen(s, ref, matches, prior)
            if rec.accepted and rec.transform is not None:
                prior = np.asarray(rec.transform)
        on_frame(k, len(candidates), rec.filename)


def _accept_reference(rec: FrameRecord) -> None:
    rec.accepted = True
    rec.transform = register.IDENTITY.tolist()
    rec.n_matched, rec.residual_px = rec.n_stars, 0.0
    rec.scale, rec.rotation_deg, rec.transparency = 1.0, 0.0, 1.0


def _screen(s: FrameState, ref: FrameState, matches: Matches, prior: np.ndarray | None) -> None:
    """Accept a frame's registration onto ``ref``, or reject it: no valid transform,
    clouds (low transparency) or blur (FWHM far above the reference's)."""
    rec, params = s.record, matches.params
    reg = matches.between(rec.index, ref.record.index, prior=prior)
    problem = matches.problem(rec.index, ref.record.index)
    if reg is not None:
        rec.n_matched = reg.n_matched
        rec.residual_px = reg.residual_px
        rec.scale, rec.rotation_deg = reg.scale, reg.rotation_deg
    if problem is not None:
        rec.reject(*problem)
        s.image = None
        return
    assert reg is not None and s.flux is not None and ref.flux is not None
    rec.transparency = quality.transparency(s.flux[reg.src_index], ref.flux[reg.ref_index])
    if math.isfinite(rec.transparency) and rec.transparency < params.min_transparency:
        rec.reject(
            RejectReason.CLOUDS,
            f"transparency {rec.transparency:.2f} of the reference's below "
            f"{params.min_transparency:g} (clouds or haze)",
        )
        s.image = None
        return
    ref_fwhm = ref.record.fwhm_px or float("nan")
    if rec.fwhm_px and math.isfinite(ref_fwhm) and rec.fwhm_px > params.max_fwhm_ratio * ref_fwhm:
        rec.reject(
            RejectReason.BLURRED,
            f"FWHM {rec.fwhm_px:.2f} px is more than {params.max_fwhm_ratio:g}x the "
            f"reference's {ref_fwhm:.2f} px (trailed or out of focus)",
        )
        s.image = None
        return
    rec.accepted = True
    rec.transform = reg.matrix.round(8).tolist()
