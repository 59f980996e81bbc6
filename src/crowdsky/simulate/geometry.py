"""Affine transforms between the sky canvas and frame pixels.

This module owns the one coordinate convention every simulated truth uses, so
that the stacking tests and the simulator cannot disagree about it:

* points are ``(x, y)`` with ``x`` the column and ``y`` the row of a numpy array;
* pixel ``(x, y)`` covers ``[x - 0.5, x + 0.5] × [y - 0.5, y + 0.5]``, so integer
  coordinates are pixel centres (the OpenCV and sep convention);
* a transform is a ``(2, 3)`` float64 matrix ``M`` mapping ``p`` to
  ``M[:, :2] @ p + M[:, 2]``, the shape ``cv2.warpAffine`` takes.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "apply_affine",
    "compose_affine",
    "invert_affine",
    "rotation_about",
]


def rotation_about(
    angle_deg: float, centre_xy: tuple[float, float], shift_xy: tuple[float, float]
) -> np.ndarray:
    """Rotate by ``angle_deg`` about ``centre_xy``, then translate by ``shift_xy``.

    A positive angle turns +x towards +y, i.e. counter-clockwise in the usual
    mathematical axes but clockwise on a display whose rows grow downwards.
    Field rotation of an alt-az mount is a rotation about the tracking centre,
    and mount drift is a translation, which is why the simulator builds every
    frame's transform from exactly these two parts.

    Parameters
    ----------
    angle_deg : float
        Rotation angle in degrees.
    centre_xy : tuple of float
        Fixed point of the rotation, ``(x, y)`` in input coordinates.
    shift_xy : tuple of float
        Translation applied after the rotation, in output pixels.

    Returns
    -------
    numpy.ndarray
        ``(2, 3)`` float64 affine matrix.
    """
    theta = math.radians(angle_deg)
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    cx, cy = centre_xy
    linear = np.array([[cos_t, -sin_t], [sin_t, cos_t]])
    offset = np.array([cx, cy]) - linear @ np.array([cx, cy]) + np.asarray(shift_xy, float)
    return np.column_stack([linear, offset]).astype(np.float64)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Return the inverse of a ``(2, 3)`` affine matrix.

    Parameters
    ----------
    matrix : numpy.ndarray
        ``(2, 3)`` affine matrix.

    Returns
    -------
    numpy.ndarray
        ``(2, 3)`` float64 matrix ``N`` with ``N ∘ matrix`` the identity.
    """
    linear = np.asarray(matrix, np.float64)[:, :2]
    offset = np.asarray(matrix, np.float64)[:, 2]
    inverse = np.linalg.inv(linear)
    return np.column_stack([inverse, -inverse @ offset])


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Return ``outer ∘ inner``: apply ``inner`` first, then ``outer``.

    Parameters
    ----------
    outer, inner : numpy.ndarray
        ``(2, 3)`` affine matrices.

    Returns
    -------
    numpy.ndarray
        ``(2, 3)`` float64 matrix.
    """
    outer = np.asarray(outer, np.float64)
    inner = np.asarray(inner, np.float64)
    linear = outer[:, :2] @ inner[:, :2]
    offset = outer[:, :2] @ inner[:, 2] + outer[:, 2]
    return np.column_stack([linear, offset])


def apply_affine(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Map points through a ``(2, 3)`` affine matrix.

    Parameters
    ----------
    matrix : numpy.ndarray
        ``(2, 3)`` affine matrix.
    xy : array_like
        Points of shape ``(n, 2)`` (or ``(2,)`` for one point), columns ``x, y``.

    Returns
    -------
    numpy.ndarray
        Mapped points, float64, same shape as ``xy``.
    """
    points = np.asarray(xy, np.float64)
    matrix = np.asarray(matrix, np.float64)
    mapped: np.ndarray = points @ matrix[:, :2].T + matrix[:, 2]
    return mapped
