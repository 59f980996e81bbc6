"""Star measurement helpers for the simulator tests: measure stars the way the engine will."""

from __future__ import annotations

import cv2
import numpy as np
import sep
from astropy.io import fits
from scipy.spatial import cKDTree

from crowdsky.simulate import SimulatedSequence


def read_raw(path) -> tuple[np.ndarray, fits.Header]:
    """Read a frame as the engine will: astropy, uint16 after BZERO."""
    with fits.open(path) as hdul:
        assert len(hdul) == 1
        return np.array(hdul[0].data), hdul[0].header.copy()


def green_plane(raw: np.ndarray) -> np.ndarray:
    """Debayer a GRBG mosaic (OpenCV's four-letter code) and return green as float32."""
    rgb = cv2.cvtColor(raw, cv2.COLOR_BayerGRBG2RGB)
    return np.ascontiguousarray(rgb[:, :, 1], dtype=np.float32)


def measure_stars(raw: np.ndarray, *, fwhm_px: float = 2.6, thresh: float = 10.0) -> np.ndarray:
    """Windowed sep centroids on the green plane: ``(n, 2)`` x, y plus peak in a 3rd column."""
    green = green_plane(raw)
    background = sep.Background(green)
    residual = green - background.back()
    objects = sep.extract(residual, thresh, err=background.globalrms, minarea=5)
    if len(objects) == 0:
        return np.zeros((0, 3))
    sigma = np.full(len(objects), fwhm_px / 2.3548)
    x, y, _flag = sep.winpos(residual, objects["x"], objects["y"], sigma)
    return np.column_stack([x, y, objects["peak"]])


def match_truth(
    sequence: SimulatedSequence, index: int, measured: np.ndarray, *, radius_px: float = 1.5
) -> tuple[np.ndarray, np.ndarray]:
    """Pair measured stars with projected truth; return (measured_xy, truth_xy) of matches."""
    _stars, truth_xy = sequence.stars_in_frame(index, margin_px=8)
    if len(truth_xy) == 0 or len(measured) == 0:
        return np.zeros((0, 2)), np.zeros((0, 2))
    distance, nearest = cKDTree(truth_xy).query(measured[:, :2])
    ok = distance < radius_px
    return measured[ok, :2], truth_xy[nearest[ok]]
