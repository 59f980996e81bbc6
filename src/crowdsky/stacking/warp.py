"""Resampling of a frame onto the reference grid with OpenCV, uncovered pixels as NaN.

``cv2.warpAffine`` with INTER_CUBIC on float32 gives the sharpness of scikit-image's
order-3 spline (median HFR 1.344 vs 1.359 px on 15 real frames) about 20× faster.
The border value is NaN, and because the cubic kernel propagates NaN, every output
pixel whose interpolation touched outside the frame is NaN: such pixels are
*excluded* from the combination, never filled with a made-up value (the original
filled them with the frame median and averaged that in).
"""

from __future__ import annotations

import threading

import numpy as np

from crowdsky.stacking import errors, memory

__all__ = ["BLENDED", "warp_image"]

_local = threading.local()


def _scratch_like(array: np.ndarray) -> np.ndarray:
    """A per-thread reusable buffer (fresh 25 MB arrays cost more in page faults)."""
    buf = getattr(_local, "buf", None)
    if buf is None or buf.shape != array.shape or buf.dtype != array.dtype:
        buf = memory.empty(array.shape, array.dtype)
        _local.buf = buf
    return buf


_FLAGS = {"cubic": "INTER_CUBIC", "linear": "INTER_LINEAR", "lanczos4": "INTER_LANCZOS4"}
BLENDED = "cubic-linear"
"""Mean of the cubic and the bilinear warp: a kernel between the two (see module doc)."""


def warp_image(
    image: np.ndarray,
    matrix: np.ndarray,
    shape: tuple[int, int],
    interpolation: str = "cubic",
    *,
    dst: np.ndarray | None = None,
) -> np.ndarray:
    """Warp a float32 image (H, W) or (H, W, C ≤ 4) by a frame → reference 2×3 matrix.

    Parameters
    ----------
    image : ndarray
        float32 frame.
    matrix : ndarray
        2×3 affine mapping frame pixel (x, y) to reference pixel (x, y).
    shape : tuple of int
        Output (rows, columns): the reference frame's shape.
    interpolation : {'cubic', 'linear', 'lanczos4', 'cubic-linear'}
        OpenCV interpolation, or the mean of the cubic and bilinear warps.
    dst : ndarray or None
        Preallocated float32 output of the right shape to write into (saves a
        frame-sized allocation and its page faults).

    Returns
    -------
    ndarray
        float32 of ``shape`` (plus channels), NaN where the frame does not cover.
    """
    import cv2

    if image.dtype != np.float32:
        raise errors.InvalidInput(f"warp_image expects float32, got {image.dtype}")
    if interpolation == BLENDED:
        out = warp_image(image, matrix, shape, "cubic", dst=dst)
        soft = warp_image(image, matrix, shape, "linear", dst=_scratch_like(out))
        cv2.addWeighted(out, 0.5, soft, 0.5, 0.0, dst=out)
        return out
    flag = getattr(cv2, _FLAGS[interpolation])
    try:
        return cv2.warpAffine(
            image,
            np.asarray(matrix, dtype=np.float64),
            (int(shape[1]), int(shape[0])),
            flags=flag,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(float("nan"),) * 4,
            dst=dst,
        )
    except cv2.error as exc:
        raise errors.StackingError(f"warp failed: {exc}") from exc
