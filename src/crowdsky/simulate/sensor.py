"""The Seestar S50 sensor model: CFA layout, gain, noise, pedestal, hot pixels.

Everything here is fixed by the camera rather than the sky, which is why the
hot pixels are drawn from their own seed and stay at the same sensor position
in every frame of a sequence (and of a night, when the caller passes the same
seed), exactly where a real dark library would find them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "BAYER_PATTERN",
    "CFA_CHANNELS",
    "FULL_SHAPE",
    "HotPixels",
    "SensorModel",
    "cfa_channel_map",
    "draw_hot_pixels",
]

#: Numpy shape (rows, columns) of a stored S50 frame: NAXIS2 = 1920, NAXIS1 = 1080.
FULL_SHAPE = (1920, 1080)
#: Bayer pattern of the array as astropy loads it (row 0 first).
BAYER_PATTERN = "GRBG"
#: Channel (0 = R, 1 = G, 2 = B) of the 2 × 2 site ``[row % 2, col % 2]`` for GRBG.
CFA_CHANNELS = np.array([[1, 0], [2, 1]], dtype=np.intp)

DEFAULT_HOT_PIXELS_FULL_FRAME = 300
_STREAM_HOT = 0x407


@dataclass(frozen=True)
class SensorModel:
    """Electronic and colour response of the simulated camera.

    Attributes
    ----------
    gain_e_per_adu : float
        Electrons per ADU (0.8 for the protocol's synthetic data).
    read_noise_e : float
        Read noise in electrons RMS.
    offset_adu : float
        Pedestal added to every pixel, ADU (about 200 here; real FW 4.27 subs
        sit near 800–1000).
    cfa_response : tuple of float
        Relative response of the R, G, B sites to a white source; the S50's
        red and blue sites collect roughly half of what green does.
    zero_clip_fraction : float
        When above 0, mimic FW 4.70: subtract the frame's level at this
        quantile and clip at 0, leaving about this fraction of exact zeros.
    saturation_adu : int
        Highest storable value.
    """

    gain_e_per_adu: float = 0.8
    read_noise_e: float = 3.0
    offset_adu: float = 200.0
    cfa_response: tuple[float, float, float] = (0.55, 1.0, 0.45)
    zero_clip_fraction: float = 0.0
    saturation_adu: int = 65535

    def __post_init__(self) -> None:
        if self.gain_e_per_adu <= 0:
            raise ValueError(f"gain_e_per_adu must be positive, got {self.gain_e_per_adu}")
        if not 0.0 <= self.zero_clip_fraction < 0.5:
            raise ValueError(
                f"zero_clip_fraction must be in [0, 0.5), got {self.zero_clip_fraction}"
            )

    @property
    def read_noise_adu(self) -> float:
        """Read noise in ADU RMS."""
        return self.read_noise_e / self.gain_e_per_adu


@dataclass(frozen=True)
class HotPixels:
    """Fixed hot pixels in sensor (frame array) coordinates.

    Attributes
    ----------
    rows, cols : numpy.ndarray
        Integer positions, one entry per hot pixel.
    level_adu : numpy.ndarray
        Each hot pixel's mean value, ADU; frames add a little noise to it.
    """

    rows: np.ndarray
    cols: np.ndarray
    level_adu: np.ndarray

    @property
    def xy(self) -> np.ndarray:
        """Positions as an ``(n, 2)`` int array of ``(x, y)`` = ``(col, row)``."""
        return np.column_stack([self.cols, self.rows])


def draw_hot_pixels(
    seed: int,
    shape: tuple[int, int],
    count: int | None = None,
    *,
    level_adu: float = 60000.0,
    spread_adu: float = 1500.0,
) -> HotPixels:
    """Choose the hot pixels of one simulated sensor.

    Parameters
    ----------
    seed : int
        Sensor seed; the same seed gives the same hot pixels.
    shape : tuple of int
        Frame shape (rows, columns).
    count : int, optional
        Number of hot pixels; by default 300 on a full 1920 × 1080 frame,
        scaled by area (at least one) for smaller test frames.
    level_adu, spread_adu : float
        Mean and standard deviation of the hot pixels' levels, ADU.

    Returns
    -------
    HotPixels
        Distinct positions with their levels.
    """
    n_rows, n_cols = shape
    if count is None:
        area_ratio = n_rows * n_cols / (FULL_SHAPE[0] * FULL_SHAPE[1])
        count = max(1, round(DEFAULT_HOT_PIXELS_FULL_FRAME * area_ratio))
    count = min(count, n_rows * n_cols)
    rng = np.random.default_rng([seed, _STREAM_HOT])
    flat = rng.choice(n_rows * n_cols, size=count, replace=False)
    levels = np.clip(rng.normal(level_adu, spread_adu, count), 1000.0, 65535.0)
    rows, cols = np.divmod(flat, n_cols)
    return HotPixels(rows=rows.astype(np.intp), cols=cols.astype(np.intp), level_adu=levels)


@lru_cache(maxsize=8)
def cfa_channel_map(shape: tuple[int, int]) -> np.ndarray:
    """Return the read-only channel index (0 R, 1 G, 2 B) of every pixel of a GRBG frame.

    Cached because every frame of a sequence shares it and building it costs as
    much as a noise draw.
    """
    n_rows, n_cols = shape
    tiled = np.tile(CFA_CHANNELS, ((n_rows + 1) // 2, (n_cols + 1) // 2))[:n_rows, :n_cols]
    tiled = np.ascontiguousarray(tiled.astype(np.int8))
    tiled.flags.writeable = False
    return tiled
