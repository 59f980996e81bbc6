"""Which stars count as saturated in the photometry."""

from __future__ import annotations

import numpy as np

from crowdsky.astrometry.photometry import FULL_SCALE_ADU, calibrate

POSITIONS = np.array([[40.0, 40.0], [120.0, 60.0], [80.0, 140.0], [150.0, 150.0]])


def plane(peaks: list[float], clip: float | None = None) -> np.ndarray:
    yy, xx = np.mgrid[0:200, 0:200].astype(np.float32)
    image = np.full((200, 200), 500.0, dtype=np.float32)
    for (x, y), peak in zip(POSITIONS, peaks, strict=True):
        image += peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.3**2))
    if clip is not None:
        np.minimum(image, clip, out=image)
    return image


def usable(image: np.ndarray) -> np.ndarray:
    found = calibrate(
        {"GREEN": image}, POSITIONS[:, 0], POSITIONS[:, 1], np.full(4, 3.0),
        np.array([9.0, 10.0, 11.0, 12.0]), exposure_s=10.0, scale_arcsec=2.4,
    )  # fmt: skip
    return found.star_usable["GREEN"]


def test_a_star_clipped_near_full_scale_is_saturated() -> None:
    clip = 0.95 * FULL_SCALE_ADU
    assert usable(plane([200_000.0, 8000.0, 3000.0, 1000.0], clip=clip)).tolist() == [
        False, True, True, True,
    ]  # fmt: skip


def test_the_brightest_star_of_a_plane_far_below_full_scale_calibrates() -> None:
    assert usable(plane([16_000.0, 8000.0, 3000.0, 1000.0])).all()
