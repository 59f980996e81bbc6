"""Extended targets of the simulator: drawn where the sky is, moving with the stars."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from crowdsky.simulate import (
    ExtendedTargetSpec,
    MotionModel,
    SequenceSpec,
    StarFieldModel,
    simulate_sequence,
    targets,
)
from crowdsky.simulate.geometry import apply_affine, invert_affine
from crowdsky.stacking import io


def light(path: Path) -> np.ndarray:
    return io.read_frame(path).data.astype(np.float64)


@pytest.mark.parametrize("kind", targets.TARGETS)
def test_target_adds_light_at_its_sky_position(kind: str, tmp_path: Path) -> None:
    plain_spec = SequenceSpec(
        n_frames=3,
        seed=4,
        shape=(480, 270),
        stars=StarFieldModel(n_stars=20),
        motion=MotionModel(rotation_deg_per_frame=0.5, drift_px_per_min=(30.0, -20.0)),
    )
    plain = simulate_sequence(tmp_path / "plain", plain_spec)
    target = ExtendedTargetSpec(kind, peak_adu=800.0)
    seq = simulate_sequence(tmp_path / kind, replace(plain_spec, extended=target))
    centre_sky = apply_affine(invert_affine(seq.truth[0].sky_to_frame), np.array([[134.5, 239.5]]))
    for frame, base in zip(seq.truth, plain.truth, strict=True):
        extra = light(frame.path) - light(base.path)  # same noise stream: only the target
        cx, cy = apply_affine(frame.sky_to_frame, centre_sky)[0]
        near = extra[int(cy) - 15 : int(cy) + 15, int(cx) - 15 : int(cx) + 15]
        assert near.mean() > 50.0  # the target is where the sky puts it in each frame
        assert np.median(extra[:20, :20]) < 5.0  # and not in the corner


def test_bad_target_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        targets.ExtendedTarget(kind="comet", centre_xy=(0.0, 0.0))
