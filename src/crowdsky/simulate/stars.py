"""Random star fields: positions, Pareto fluxes and colours.

The sky is generated tile by tile, each tile from its own seed, so a star field
is an infinite, deterministic function of the seed: two sequences with the same
seed see the same sky however far they drift, and adding frames to a sequence
never changes the stars of the frames already there.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "STAR_DTYPE",
    "draw_star_field",
]

#: Structured dtype of a star catalogue: sky-canvas position (px), total flux
#: (ADU, before the CFA response) and colour weights (mean 1 over r, g, b).
STAR_DTYPE = np.dtype(
    [
        ("x", np.float64),
        ("y", np.float64),
        ("flux", np.float64),
        ("r", np.float64),
        ("g", np.float64),
        ("b", np.float64),
    ]
)

TILE_SIZE_PX = 256
# Colour spread: a colour index t ~ N(0, COLOUR_SIGMA) clipped to ±1 tilts the
# spectrum from blue (t < 0) to red (t > 0) by ±COLOUR_TILT.
COLOUR_SIGMA = 0.4
COLOUR_TILT = 0.45
# Seed stream tag so star tiles never share a random stream with anything else.
_STREAM_STARS = 0x57A125


def draw_star_field(
    seed: int,
    bounds_xy: tuple[float, float, float, float],
    *,
    density_per_px2: float,
    flux_min_adu: float,
    pareto_index: float,
    flux_max_adu: float,
) -> np.ndarray:
    """Draw every star of the seeded sky inside a rectangle.

    Star counts per tile are Poisson with mean ``density_per_px2 * tile area``;
    fluxes follow a Pareto law ``N(>F) ∝ F**-pareto_index`` above
    ``flux_min_adu`` (the slope of real star counts is close to 1 in flux), so
    most stars are faint and a few saturate, as in a real field.

    Parameters
    ----------
    seed : int
        Sky seed; the same seed always yields the same stars at the same places.
    bounds_xy : tuple of float
        ``(x_min, y_min, x_max, y_max)`` on the sky canvas, in pixels.
    density_per_px2 : float
        Mean number of stars per square pixel.
    flux_min_adu : float
        Faintest total flux, ADU.
    pareto_index : float
        Slope of the cumulative flux distribution.
    flux_max_adu : float
        Cap on the total flux, ADU, so one freak star cannot flood a frame.

    Returns
    -------
    numpy.ndarray
        Structured array of ``STAR_DTYPE``, sorted by decreasing flux.
    """
    x_min, y_min, x_max, y_max = bounds_xy
    tile_x0 = math.floor(x_min / TILE_SIZE_PX)
    tile_x1 = math.floor(x_max / TILE_SIZE_PX)
    tile_y0 = math.floor(y_min / TILE_SIZE_PX)
    tile_y1 = math.floor(y_max / TILE_SIZE_PX)
    mean_per_tile = density_per_px2 * TILE_SIZE_PX**2
    parts = []
    for ty in range(tile_y0, tile_y1 + 1):
        for tx in range(tile_x0, tile_x1 + 1):
            # Negative tile indices are fine for SeedSequence after an offset.
            rng = np.random.default_rng([seed, _STREAM_STARS, tx + 2**20, ty + 2**20])
            parts.append(_draw_tile(rng, tx, ty, mean_per_tile, flux_min_adu, pareto_index))
    stars = np.concatenate(parts) if parts else np.zeros(0, STAR_DTYPE)
    inside = (
        (stars["x"] >= x_min)
        & (stars["x"] <= x_max)
        & (stars["y"] >= y_min)
        & (stars["y"] <= y_max)
    )
    stars = stars[inside]
    stars["flux"] = np.minimum(stars["flux"], flux_max_adu)
    return stars[np.argsort(-stars["flux"], kind="stable")]


def _draw_tile(
    rng: np.random.Generator,
    tile_x: int,
    tile_y: int,
    mean_count: float,
    flux_min_adu: float,
    pareto_index: float,
) -> np.ndarray:
    """Draw the stars of one sky tile from its own generator."""
    count = int(rng.poisson(mean_count))
    stars = np.zeros(count, STAR_DTYPE)
    stars["x"] = (tile_x + rng.random(count)) * TILE_SIZE_PX
    stars["y"] = (tile_y + rng.random(count)) * TILE_SIZE_PX
    stars["flux"] = flux_min_adu * (1.0 + rng.pareto(pareto_index, count))
    tilt = np.clip(rng.normal(0.0, COLOUR_SIGMA, count), -1.0, 1.0) * COLOUR_TILT
    stars["r"] = 1.0 + tilt
    stars["g"] = 1.0
    stars["b"] = 1.0 - tilt
    return stars
