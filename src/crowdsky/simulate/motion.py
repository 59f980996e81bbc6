"""Where each frame points: mount drift, dither and alt-az field rotation.

This module owns the per-frame ``sky_to_frame`` transforms of a sequence. A
Seestar in alt-az mode tracks imperfectly (a slow drift of a few pixels over
minutes plus small jumps) and the field rotates about the tracking centre;
both are modelled explicitly so the stacking tests can compare a recovered
transform with the injected one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from crowdsky.simulate import geometry

__all__ = [
    "MotionModel",
    "plan_transforms",
]

_STREAM_DITHER = 0xD17


@dataclass(frozen=True)
class MotionModel:
    """Pointing behaviour of one sequence.

    Attributes
    ----------
    drift_px_per_min : tuple of float
        Steady drift of the field on the sensor, ``(x, y)`` pixels per minute
        (the real M 94 run drifted 4–13 px in a few minutes).
    dither_sigma_px : float
        Standard deviation of an independent per-frame jump, pixels.
    rotation_deg_per_frame : float
        Field rotation added per frame, degrees (alt-az: ~0.01–0.05; EQ: 0).
    rotation_centre_xy : tuple of float, optional
        Rotation centre in frame pixels; the frame centre by default.
    frame_offsets : mapping of int to (dx_px, dy_px, dtheta_deg)
        Extra shift and rotation for chosen frames (a framing walk, a frame
        rotated 2°), on top of the steady model.
    """

    drift_px_per_min: tuple[float, float] = (1.2, -1.6)
    dither_sigma_px: float = 0.7
    rotation_deg_per_frame: float = 0.02
    rotation_centre_xy: tuple[float, float] | None = None
    frame_offsets: Mapping[int, tuple[float, float, float]] = field(default_factory=dict)


def plan_transforms(
    motion: MotionModel,
    *,
    seed: int,
    shape: tuple[int, int],
    elapsed_s: Sequence[float],
) -> list[np.ndarray]:
    """Return each frame's ``sky_to_frame`` matrix.

    Frame ``i`` maps a sky-canvas point ``p`` to
    ``R(theta_i) (p - c) + c + s_i`` with ``theta_i = i * rate + dtheta_i``
    and ``s_i = drift * t_i + dither_i + (dx_i, dy_i)``. The dither of frame
    ``i`` comes from its own random stream, so a longer sequence with the same
    seed starts with exactly the same frames.

    Parameters
    ----------
    motion : MotionModel
        Drift, dither and rotation.
    seed : int
        Sequence seed.
    shape : tuple of int
        Frame shape (rows, columns), for the default rotation centre.
    elapsed_s : sequence of float
        Time of each frame since the first, seconds.

    Returns
    -------
    list of numpy.ndarray
        One ``(2, 3)`` float64 matrix per frame.
    """
    n_rows, n_cols = shape
    centre = motion.rotation_centre_xy or ((n_cols - 1) / 2.0, (n_rows - 1) / 2.0)
    drift = np.asarray(motion.drift_px_per_min, np.float64) / 60.0
    matrices = []
    for index, t_s in enumerate(elapsed_s):
        rng = np.random.default_rng([seed, _STREAM_DITHER, index])
        dither = rng.normal(0.0, motion.dither_sigma_px, 2) if motion.dither_sigma_px else 0.0
        dx, dy, dtheta = motion.frame_offsets.get(index, (0.0, 0.0, 0.0))
        shift = drift * t_s + dither + np.array([dx, dy])
        angle = index * motion.rotation_deg_per_frame + dtheta
        matrices.append(geometry.rotation_about(angle, centre, (shift[0], shift[1])))
    return matrices
