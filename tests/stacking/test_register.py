"""Star matching and transform validation on synthetic star lists."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crowdsky.stacking import register
from crowdsky.stacking.result import RejectReason


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    c, s = scale * math.cos(a), scale * math.sin(a)
    return np.array([[c, -s, tx], [s, c, ty]])


def star_list(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0, 1080, n), rng.uniform(0, 1920, n)])


@pytest.mark.parametrize(
    ("angle", "shift"), [(0.01, (7.5, -12.25)), (0.3, (11.6, 3.0)), (69.4, (-150.0, 420.0))]
)
def test_recovers_known_transform(angle: float, shift: tuple[float, float]) -> None:
    ref = star_list(60, 1)
    truth = similarity(angle, 1.0, *shift)
    src = register.apply(register.estimate_transform(ref, ref), ref)  # identity sanity
    inv = np.linalg.inv(np.vstack([truth, [0, 0, 1]]))[:2]
    src = register.apply(inv, ref) + np.random.default_rng(2).normal(0, 0.05, ref.shape)
    # drop a few stars and add spurious ones, as real detection does
    src = np.vstack([src[5:], star_list(6, 9)])
    reg = register.match_stars(src, ref, radius_px=3.0)
    assert reg is not None
    assert reg.n_matched >= 50
    np.testing.assert_allclose(reg.matrix, truth, atol=0.02)
    assert reg.residual_px < 0.15
    assert abs(reg.rotation_deg - angle) < 0.01
    assert (
        register.validate(
            reg,
            n_src=len(src),
            n_ref=len(ref),
            min_matched=6,
            min_fraction=0.2,
            max_residual_px=1.0,
            max_scale_deviation=0.02,
            max_rotation_deg=90.0,
        )
        is None
    )


def test_foreign_field_does_not_match() -> None:
    reg = register.match_stars(star_list(60, 4), star_list(60, 5), radius_px=3.0, min_matches=6)
    problem = register.validate(
        reg,
        n_src=60,
        n_ref=60,
        min_matched=6,
        min_fraction=0.2,
        max_residual_px=1.0,
        max_scale_deviation=0.02,
        max_rotation_deg=45.0,
    )
    assert problem is not None
    assert problem[0] in (RejectReason.NO_MATCH, RejectReason.TOO_FEW_MATCHES)


def test_validation_reasons() -> None:
    ref = star_list(40, 6)
    kwargs = dict(
        n_src=40,
        n_ref=40,
        min_matched=6,
        min_fraction=0.2,
        max_residual_px=1.0,
        max_scale_deviation=0.02,
        max_rotation_deg=45.0,
    )
    idx = np.arange(40)
    scaled = register.Registration(similarity(0, 1.05, 0, 0), idx, idx, 0.2)
    assert register.validate(scaled, **kwargs)[0] is RejectReason.BAD_SCALE
    rotated = register.Registration(similarity(60, 1.0, 0, 0), idx, idx, 0.2)
    assert register.validate(rotated, **kwargs)[0] is RejectReason.BAD_ROTATION
    blurred = register.Registration(similarity(0, 1.0, 0, 0), idx, idx, 1.7)
    assert register.validate(blurred, **kwargs)[0] is RejectReason.LARGE_RESIDUAL
    few = register.Registration(similarity(0, 1.0, 0, 0), idx[:4], idx[:4], 0.2)
    assert register.validate(few, **kwargs)[0] is RejectReason.TOO_FEW_MATCHES
    assert register.validate(None, **kwargs)[0] is RejectReason.NO_MATCH
    _ = ref


def test_matching_is_deterministic() -> None:
    ref = star_list(50, 7)
    src = register.apply(similarity(-2.0, 1.0, 30, -20), ref)
    a = register.match_stars(src, ref)
    b = register.match_stars(src, ref)
    assert a is not None and b is not None
    np.testing.assert_array_equal(a.matrix, b.matrix)
