"""Affine helpers: the truth convention rests on them."""

from __future__ import annotations

import numpy as np

from crowdsky.simulate import apply_affine, compose_affine, invert_affine, rotation_about


def test_rotation_about_keeps_its_centre_fixed_then_shifts() -> None:
    matrix = rotation_about(30.0, (100.0, 50.0), (2.0, -3.0))
    assert matrix.shape == (2, 3)
    assert matrix.dtype == np.float64
    np.testing.assert_allclose(apply_affine(matrix, np.array([100.0, 50.0])), [102.0, 47.0])


def test_positive_angle_turns_x_towards_y() -> None:
    matrix = rotation_about(90.0, (0.0, 0.0), (0.0, 0.0))
    np.testing.assert_allclose(apply_affine(matrix, np.array([1.0, 0.0])), [0.0, 1.0], atol=1e-12)


def test_invert_and_compose_round_trip() -> None:
    rng = np.random.default_rng(1)
    a = rotation_about(12.3, (5.0, 7.0), (1.5, -2.5))
    b = rotation_about(-4.0, (50.0, 70.0), (-3.0, 0.25))
    points = rng.uniform(0, 100, (10, 2))
    np.testing.assert_allclose(apply_affine(compose_affine(invert_affine(a), a), points), points)
    np.testing.assert_allclose(
        apply_affine(compose_affine(b, a), points), apply_affine(b, apply_affine(a, points))
    )
