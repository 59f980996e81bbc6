"""Extended targets on the sky canvas: a spiral galaxy, a globular cluster, an emission nebula.

A target is rendered once as a linear RGB patch on the sky canvas
(:func:`render_patch`) and each frame samples it through that frame's
``sky_to_frame`` transform (:func:`sample_into_frame`), so it drifts and rotates with
the stars; the frame renderer then applies each CFA site's response, as to the sky.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["TARGETS", "ExtendedTarget", "render_patch", "sample_into_frame"]

TARGETS = ("galaxy", "nebula", "cluster")


@dataclass(frozen=True)
class ExtendedTarget:
    """One extended target.

    Attributes
    ----------
    kind : {'galaxy', 'cluster', 'nebula'}
        What to draw. ``'galaxy'``: an inclined two-armed spiral, a yellow
        de Vaucouleurs-like bulge and a bluer exponential disk modulated along
        logarithmic arms, with a few H II knots. ``'cluster'``: a globular cluster, a
        smooth Plummer glow of unresolved stars sprinkled with a few hundred barely
        resolved ones. ``'nebula'``: a red (Hα) emission cloud with a teal (O III)
        core, a seeded multi-scale random field in a soft elliptical envelope, with a
        dark lane.
    centre_xy : tuple of float
        Centre on the sky canvas (x = column, y = row).
    size_px : float
        Radius of the visible extent, pixels (the galaxy's disk, the nebula's
        envelope).
    peak_adu : float
        Brightest surface brightness, ADU per pixel above the sky (white response).
    angle_deg : float
        Position angle of the major axis, from +x towards +y.
    seed : int
        Seed of the nebula's structure and the galaxy's knots.
    """

    kind: str
    centre_xy: tuple[float, float]
    size_px: float = 220.0
    peak_adu: float = 600.0
    angle_deg: float = 35.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in TARGETS:
            raise ValueError(f"kind must be one of {TARGETS}, got {self.kind!r}")
        if self.size_px <= 0 or self.peak_adu < 0:
            raise ValueError("size_px must be positive and peak_adu non-negative")


def render_patch(target: ExtendedTarget) -> tuple[np.ndarray, tuple[float, float]]:
    """The target as a (3, S, S) float32 RGB patch and the canvas position of its
    pixel (0, 0) centre."""
    half = math.ceil(1.6 * target.size_px)
    size = 2 * half + 1
    y, x = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    angle = math.radians(target.angle_deg)
    u = x * math.cos(angle) + y * math.sin(angle)  # along the major axis
    v = -x * math.sin(angle) + y * math.cos(angle)
    if target.kind == "galaxy":
        rgb = _galaxy(u, v, target)
    elif target.kind == "cluster":
        rgb = _cluster(x, y, target)  # round: no orientation
    else:
        rgb = _nebula(u, v, target, size)
    top = float(rgb.max())
    if top > 0:
        rgb *= target.peak_adu / top
    origin = (target.centre_xy[0] - half, target.centre_xy[1] - half)
    return rgb.astype(np.float32), origin


def _galaxy(u: np.ndarray, v: np.ndarray, target: ExtendedTarget) -> np.ndarray:
    axis_ratio = 0.45
    r_disk = target.size_px / 3.2  # scale length: the disk fades into the noise by size_px
    w = v / axis_ratio  # de-projected
    r = np.hypot(u, w)
    theta = np.arctan2(w, u)
    disk = np.exp(-r / r_disk)
    pitch = math.radians(18.0)
    phase = 2.0 * (theta - np.log(np.maximum(r, 1.0) / r_disk) / math.tan(pitch))
    arms = 0.35 + 0.65 * np.clip(np.cos(phase), 0.0, None) ** 2
    taper = 1.0 - np.exp(-((r / (0.35 * r_disk)) ** 2))  # arms start outside the bulge
    disk_light = disk * (1.0 - taper + taper * arms)
    r_bulge = 0.18 * r_disk
    bulge = np.exp(-7.67 * ((np.hypot(u, v / 0.8) / r_bulge) ** 0.25 - 1.0))
    bulge = np.minimum(bulge, 40.0)
    rng = np.random.default_rng([target.seed, 1])
    knots = np.zeros_like(r)
    for _ in range(14):
        rk = r_disk * rng.uniform(0.8, 2.4)
        tk = np.log(rk / r_disk) / math.tan(pitch) + math.pi * rng.integers(0, 2)
        ku, kw = rk * math.cos(tk), rk * math.sin(tk)
        knots += 0.5 * np.exp(-((u - ku) ** 2 + (w - kw) ** 2) / (2 * 2.5**2))
    knots *= disk
    bulge_rgb = np.array([1.0, 0.82, 0.55])
    disk_rgb = np.array([0.75, 0.85, 1.0])
    knot_rgb = np.array([1.0, 0.45, 0.75])
    return (
        bulge_rgb[:, None, None] * (0.6 * bulge / 40.0)
        + disk_rgb[:, None, None] * disk_light
        + knot_rgb[:, None, None] * knots
    )


def _cluster(u: np.ndarray, v: np.ndarray, target: ExtendedTarget) -> np.ndarray:
    core = target.size_px / 5.0
    r2 = u**2 + v**2
    glow = (1.0 + r2 / core**2) ** -2.5
    rng = np.random.default_rng([target.seed, 3])
    n_stars = 400
    # Plummer-distributed radii: r = a / sqrt(q^(-2/3) - 1)
    q = rng.uniform(0.02, 0.98, n_stars)
    radius = 1.6 * core / np.sqrt(q ** (-2.0 / 3.0) - 1.0)
    angle = rng.uniform(0.0, 2.0 * math.pi, n_stars)
    flux = rng.pareto(1.5, n_stars) + 1.0
    speckle = np.zeros_like(u)
    half = u.shape[0] // 2
    for rk, ak, fk in zip(radius, angle, flux, strict=True):
        x0, y0 = rk * math.cos(ak), rk * math.sin(ak)
        if abs(x0) > half - 4 or abs(y0) > half - 4:
            continue
        i, j = round(y0) + half, round(x0) + half
        box = (slice(i - 4, i + 5), slice(j - 4, j + 5))
        speckle[box] += fk * np.exp(-((u[box] - x0) ** 2 + (v[box] - y0) ** 2) / (2 * 1.1**2))
    light = glow + 0.1 * np.minimum(speckle, 4.0)
    colour = np.array([1.0, 0.93, 0.8])
    return colour[:, None, None] * light


def _nebula(u: np.ndarray, v: np.ndarray, target: ExtendedTarget, size: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng([target.seed, 2])
    field = np.zeros((size, size), np.float64)
    for cells, weight in ((4, 1.0), (8, 0.6), (16, 0.35), (32, 0.2)):
        coarse = rng.normal(size=(cells, cells)).astype(np.float32)
        field += weight * cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    field = (field - field.mean()) / field.std()
    s = target.size_px
    envelope = np.exp(-0.5 * ((u / (0.6 * s)) ** 2 + (v / (0.42 * s)) ** 2))
    emission = envelope * np.exp(0.8 * field)
    lane = 1.0 - 0.8 * np.exp(-0.5 * ((v - 0.25 * u - 0.15 * s) / (0.06 * s)) ** 2)
    emission *= lane
    core = np.exp(-0.5 * ((u / (0.2 * s)) ** 2 + (v / (0.16 * s)) ** 2)) * np.exp(0.5 * field)
    halpha = np.array([1.0, 0.22, 0.3])
    oiii = np.array([0.15, 0.8, 0.85])
    return halpha[:, None, None] * emission + oiii[:, None, None] * (0.5 * core * lane)


def sample_into_frame(
    patch: np.ndarray,
    origin: tuple[float, float],
    sky_to_frame: np.ndarray,
    shape: tuple[int, int],
) -> np.ndarray:
    """The patch seen by one frame: (3, rows, cols) float32 (zero outside the patch)."""
    import cv2

    matrix = np.asarray(sky_to_frame, dtype=np.float64)
    # patch pixel (i, j) -> canvas (j + ox, i + oy) -> frame: fold the offset in
    shift = np.array([[1.0, 0.0, origin[0]], [0.0, 1.0, origin[1]], [0.0, 0.0, 1.0]])
    full = np.vstack([matrix, [0.0, 0.0, 1.0]]) @ shift
    rows, cols = shape
    out = np.empty((3, rows, cols), np.float32)
    for c in range(3):
        out[c] = cv2.warpAffine(
            patch[c],
            full[:2],
            (cols, rows),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
    return out
