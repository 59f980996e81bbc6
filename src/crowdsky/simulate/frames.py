"""Render one synthetic Seestar S50 exposure as a GRBG uint16 mosaic.

This module owns the pixels of a single frame: the sky background with its
gradient, stars drawn through a small PSF stamp each, an optional satellite
trail, the CFA response, Poisson and read noise, the pedestal, the fixed hot
pixels, saturation and the optional FW 4.70 zero clipping. It knows nothing
about time, motion or files; ``sequence`` decides where the stars fall.

Coordinates follow :mod:`crowdsky.simulate.geometry`: ``x`` is the column,
``y`` the row, and pixel ``(x, y)`` covers ``[x - 0.5, x + 0.5]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import erf

from crowdsky.simulate import sensor as sensor_mod

__all__ = [
    "FrameLight",
    "FrameStats",
    "PsfModel",
    "SkyModel",
    "Trail",
    "render_frame",
]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
# Stamp half-sizes: each star gets the smallest one that takes its profile
# below STAMP_FLOOR_ADU, so faint stars cost a 9 × 9 stamp and only the few
# bright ones pay for wide wings.
STAMP_RADII_PX = (4, 6, 8, 12, 16, 24, 32, 48, 64)
STAMP_FLOOR_ADU = 0.5
# Below this many expected electrons the Gaussian approximation of Poisson
# noise is visibly wrong (skewed, can go negative), so those pixels get exact
# Poisson draws; above it one Gaussian draw per pixel (variance = mean + read
# noise²) is ~7× faster, and exact draws for a whole low-sky frame would cost
# ~150 ms. With a few e- of read noise the approximation error above 3 e- is
# far below anything a stacker can measure.
EXACT_POISSON_BELOW_E = 3.0
HOT_PIXEL_JITTER_ADU = 150.0
# Subsampling stride when estimating the zero-clip level: plenty of pixels
# for a quantile, a fraction of the cost of the full frame.
_CLIP_SAMPLE_STRIDE = (5, 3)


@dataclass(frozen=True)
class PsfModel:
    """Point-spread function of one frame.

    Attributes
    ----------
    fwhm_px : float
        Full width at half maximum, pixels.
    profile : {'gaussian', 'moffat'}
        Gaussian stamps are integrated exactly over each pixel (so centroids
        are unbiased); Moffat stamps are sampled at pixel centres and have the
        extended wings real seeing gives bright stars.
    moffat_beta : float
        Moffat ``beta``; smaller means stronger wings.
    smear_px : float
        Length of a linear smear (wind shake, tracking jump), pixels; 0 = none.
    smear_angle_deg : float
        Direction of the smear, from +x towards +y.
    """

    fwhm_px: float = 2.6
    profile: str = "gaussian"
    moffat_beta: float = 3.0
    smear_px: float = 0.0
    smear_angle_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.profile not in ("gaussian", "moffat"):
            raise ValueError(f"profile must be 'gaussian' or 'moffat', got {self.profile!r}")
        if self.fwhm_px <= 0:
            raise ValueError(f"fwhm_px must be positive, got {self.fwhm_px}")
        if self.profile == "moffat" and self.moffat_beta <= 1.0:
            raise ValueError(f"moffat_beta must exceed 1, got {self.moffat_beta}")


@dataclass(frozen=True)
class Trail:
    """A satellite trail: a straight bright line, in frame pixels.

    Attributes
    ----------
    x0, y0, x1, y1 : float
        End points (usually on the frame edges).
    peak_adu : float
        Peak brightness on a green site, ADU above the sky.
    width_px : float
        FWHM of the trail's cross-section, pixels.
    """

    x0: float
    y0: float
    x1: float
    y1: float
    peak_adu: float = 3000.0
    width_px: float = 2.0


@dataclass(frozen=True)
class SkyModel:
    """Sky background: level on a green site at the centre, gradient and colour.

    Attributes
    ----------
    sky_e : float
        Electrons per pixel on a green site at the frame centre.
    gradient : tuple of float
        Fractional change across the frame, ``(x, y)``: a linear light-pollution
        gradient, fixed on the sensor.
    rgb : tuple of float
        Colour of the sky (R, G, B multipliers).
    """

    sky_e: float = 400.0
    gradient: tuple[float, float] = (0.08, -0.15)
    rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class FrameLight:
    """The light that reaches the sensor during one frame, in the frame's pixels.

    Attributes
    ----------
    stars_xy : numpy.ndarray
        ``(n, 2)`` star positions (``x`` column, ``y`` row).
    stars_flux_adu : numpy.ndarray
        ``(n,)`` total flux of each star for a white response, ADU.
    stars_rgb : numpy.ndarray
        ``(n, 3)`` colour weights of each star.
    sky : SkyModel
        Sky background of this frame.
    trail : Trail or None
        A satellite trail to draw.
    extended : numpy.ndarray or None
        ``(3, rows, cols)`` linear RGB light of extended targets (ADU for a white
        response), e.g. from :func:`crowdsky.simulate.targets.sample_into_frame`.
    """

    stars_xy: np.ndarray
    stars_flux_adu: np.ndarray
    stars_rgb: np.ndarray
    sky: SkyModel
    trail: Trail | None = None
    extended: np.ndarray | None = None


@dataclass(frozen=True)
class FrameStats:
    """Background of a rendered frame, for truth records.

    Attributes
    ----------
    sky_adu : float
        Mean background level over the frame (all CFA sites, pedestal
        included, after any zero-clip subtraction), ADU.
    noise_adu : float
        Per-pixel background noise (Poisson + read) at that level, ADU RMS,
        averaged in variance over the four CFA sites.
    """

    sky_adu: float
    noise_adu: float


def render_frame(
    shape: tuple[int, int],
    *,
    rng: np.random.Generator,
    light: FrameLight,
    psf: PsfModel,
    sensor: sensor_mod.SensorModel,
    hot_pixels: sensor_mod.HotPixels,
) -> tuple[np.ndarray, FrameStats]:
    """Render one raw frame.

    Parameters
    ----------
    shape : tuple of int
        Output shape (rows, columns); the real S50 frame is ``(1920, 1080)``.
    rng : numpy.random.Generator
        Source of the noise; the frame is a pure function of it and the inputs.
    light : FrameLight
        Stars, sky, trail and extended targets, in this frame's pixels.
    psf : PsfModel
        Point-spread function of this frame.
    sensor : SensorModel
        Gain, noise, pedestal, CFA response and clipping.
    hot_pixels : HotPixels
        Fixed hot pixels of the sensor.

    Returns
    -------
    mosaic : numpy.ndarray
        ``shape`` uint16 GRBG mosaic.
    stats : FrameStats
        Background level and noise of the frame.
    """
    gain = sensor.gain_e_per_adu
    response = np.asarray(sensor.cfa_response, np.float64)
    sky_site_adu = light.sky.sky_e / gain * response * np.asarray(light.sky.rgb, np.float64)
    signal = _expected_signal(shape, light, psf, response, sky_site_adu)
    image = _add_noise(signal, rng, sensor)
    image += np.float32(sensor.offset_adu)
    jitter = rng.normal(0.0, HOT_PIXEL_JITTER_ADU, hot_pixels.rows.size)
    image[hot_pixels.rows, hot_pixels.cols] = hot_pixels.level_adu + jitter

    sky_level = sensor.offset_adu + float(sky_site_adu[[1, 0, 2, 1]].mean())
    variance = sky_site_adu[[1, 0, 2, 1]] / gain + sensor.read_noise_adu**2
    if sensor.zero_clip_fraction > 0.0:
        sample = image[:: _CLIP_SAMPLE_STRIDE[0], :: _CLIP_SAMPLE_STRIDE[1]]
        black = float(np.quantile(sample, sensor.zero_clip_fraction))
        image -= np.float32(black)
        sky_level -= black
    np.clip(image, 0.0, float(sensor.saturation_adu), out=image)
    np.rint(image, out=image)
    stats = FrameStats(sky_adu=sky_level, noise_adu=float(np.sqrt(variance.mean())))
    return image.astype(np.uint16), stats


def _expected_signal(
    shape: tuple[int, int],
    light: FrameLight,
    psf: PsfModel,
    response: np.ndarray,
    sky_site_adu: np.ndarray,
) -> np.ndarray:
    """Noise-free signal of every site (ADU, no pedestal): sky, stars, trail, targets."""
    channels = sensor_mod.cfa_channel_map(shape)
    signal = _sky_image(shape, sky_site_adu, light.sky.gradient)
    if len(light.stars_xy):
        rgb_adu = light.stars_flux_adu[:, None] * light.stars_rgb * response[None, :]
        _add_stars(signal, np.asarray(light.stars_xy, np.float64), rgb_adu, psf)
    if light.trail is not None:
        _add_trail(signal, light.trail, response, channels)
    if light.extended is not None:
        site_light = np.take_along_axis(light.extended, channels[None].astype(np.intp), axis=0)[0]
        signal += site_light * response.astype(np.float32)[channels]
    return signal


def _sky_image(
    shape: tuple[int, int],
    sky_site_adu: np.ndarray,
    sky_gradient: tuple[float, float],
) -> np.ndarray:
    """Expected sky (ADU, no pedestal): CFA-weighted level times a linear ramp.

    The level changes every frame, so only its shape (per-site colour and
    ramp) is cached and the green level is applied as one scalar.
    """
    green_adu = float(sky_site_adu[1])
    relative = tuple((sky_site_adu / green_adu).tolist()) if green_adu > 0 else (0.0,) * 3
    image: np.ndarray = np.multiply(
        _gradient_ramp(shape, sky_gradient), _site_pattern(shape, relative)
    )
    image *= np.float32(green_adu)
    return image


@lru_cache(maxsize=4)
def _gradient_ramp(shape: tuple[int, int], sky_gradient: tuple[float, float]) -> np.ndarray:
    """Linear ramp with mean 1, ``1 + gx (x - cx) / W + gy (y - cy) / H``."""
    n_rows, n_cols = shape
    gx, gy = sky_gradient
    x_term = gx * (np.arange(n_cols, dtype=np.float32) - (n_cols - 1) / 2) / n_cols
    y_term = gy * (np.arange(n_rows, dtype=np.float32) - (n_rows - 1) / 2) / n_rows
    ramp = (1.0 + y_term[:, None] + x_term[None, :]).astype(np.float32)
    ramp.flags.writeable = False
    return ramp


@lru_cache(maxsize=4)
def _site_pattern(shape: tuple[int, int], site_values: tuple[float, ...]) -> np.ndarray:
    """Full-frame float32 image of one value per CFA channel (R, G, B)."""
    lookup = np.asarray(site_values, np.float32)
    pattern: np.ndarray = lookup[sensor_mod.cfa_channel_map(shape)]
    pattern.flags.writeable = False
    return pattern


def _add_stars(image: np.ndarray, xy: np.ndarray, rgb_adu: np.ndarray, psf: PsfModel) -> None:
    """Add stars to ``image`` in place, one small stamp per star, grouped by stamp size."""
    if psf.smear_px > 0:
        xy, rgb_adu = _smear(xy, rgb_adu, psf)
    n_rows, n_cols = image.shape
    radii = _stamp_radii(rgb_adu.max(axis=1), psf)
    reach = radii + 1
    visible = (
        (xy[:, 0] > -reach)
        & (xy[:, 0] < n_cols - 1 + reach)
        & (xy[:, 1] > -reach)
        & (xy[:, 1] < n_rows - 1 + reach)
    )
    flat = image.reshape(-1)
    for radius in np.unique(radii[visible]):
        members = visible & (radii == radius)
        _add_stamps(flat, image.shape, xy[members], rgb_adu[members], psf, int(radius))


def _smear(xy: np.ndarray, rgb_adu: np.ndarray, psf: PsfModel) -> tuple[np.ndarray, np.ndarray]:
    """Replace each star by copies spread evenly along the smear segment."""
    n_copies = max(2, math.ceil(2.0 * psf.smear_px))
    theta = math.radians(psf.smear_angle_deg)
    steps = (np.arange(n_copies) / (n_copies - 1) - 0.5) * psf.smear_px
    offsets = np.column_stack([steps * math.cos(theta), steps * math.sin(theta)])
    smeared_xy = (xy[:, None, :] + offsets[None, :, :]).reshape(-1, 2)
    smeared_rgb = np.repeat(rgb_adu / n_copies, n_copies, axis=0)
    return smeared_xy, smeared_rgb


def _stamp_radii(peak_flux_adu: np.ndarray, psf: PsfModel) -> np.ndarray:
    """Smallest listed stamp radius at which each star's profile falls below the floor."""
    flux = np.maximum(peak_flux_adu, 1e-9)
    if psf.profile == "gaussian":
        sigma = psf.fwhm_px / FWHM_PER_SIGMA
        peak = flux / (2.0 * math.pi * sigma**2)
        needed = sigma * np.sqrt(2.0 * np.log(np.maximum(peak / STAMP_FLOOR_ADU, math.e)))
    else:
        alpha = _moffat_alpha(psf)
        beta = psf.moffat_beta
        peak = flux * (beta - 1.0) / (math.pi * alpha**2)
        ratio = np.maximum(peak / STAMP_FLOOR_ADU, 1.0)
        needed = alpha * np.sqrt(np.maximum(ratio ** (1.0 / beta) - 1.0, 0.0))
    needed = needed + 1.0 + psf.smear_px / max(2, math.ceil(2.0 * psf.smear_px))
    table = np.asarray(STAMP_RADII_PX)
    index = np.minimum(np.searchsorted(table, needed), table.size - 1)
    radii: np.ndarray = table[index]
    return radii


def _moffat_alpha(psf: PsfModel) -> float:
    """Moffat core width ``alpha`` giving the requested FWHM."""
    return psf.fwhm_px / (2.0 * math.sqrt(2.0 ** (1.0 / psf.moffat_beta) - 1.0))


def _add_stamps(
    flat: np.ndarray,
    shape: tuple[int, int],
    xy: np.ndarray,
    rgb_adu: np.ndarray,
    psf: PsfModel,
    radius: int,
) -> None:
    """Add same-size stamps of several stars to the flattened image."""
    n_rows, n_cols = shape
    offsets = np.arange(-radius, radius + 1)
    x, y = xy[:, 0], xy[:, 1]
    cols = np.rint(x).astype(np.intp)[:, None] + offsets[None, :]
    rows = np.rint(y).astype(np.intp)[:, None] + offsets[None, :]
    if psf.profile == "gaussian":
        scale = math.sqrt(2.0) * psf.fwhm_px / FWHM_PER_SIGMA
        ex = 0.5 * (erf((cols + 0.5 - x[:, None]) / scale) - erf((cols - 0.5 - x[:, None]) / scale))
        ey = 0.5 * (erf((rows + 0.5 - y[:, None]) / scale) - erf((rows - 0.5 - y[:, None]) / scale))
        profile = ey[:, :, None] * ex[:, None, :]
    else:
        alpha = _moffat_alpha(psf)
        beta = psf.moffat_beta
        dx2 = ((cols - x[:, None]) / alpha) ** 2
        dy2 = ((rows - y[:, None]) / alpha) ** 2
        norm = (beta - 1.0) / (math.pi * alpha**2)
        profile = norm * (1.0 + dy2[:, :, None] + dx2[:, None, :]) ** (-beta)
    channel = sensor_mod.CFA_CHANNELS[(rows % 2)[:, :, None], (cols % 2)[:, None, :]]
    star_index = np.arange(len(xy))[:, None, None]
    values = profile * rgb_adu[star_index, channel]
    inside = ((rows >= 0) & (rows < n_rows))[:, :, None] & ((cols >= 0) & (cols < n_cols))[
        :, None, :
    ]
    linear = rows[:, :, None] * n_cols + cols[:, None, :]
    np.add.at(flat, linear[inside], values[inside].astype(np.float32))


def _add_trail(image: np.ndarray, trail: Trail, response: np.ndarray, channels: np.ndarray) -> None:
    """Add a Gaussian-profile line, restricted to the rows/columns band it crosses."""
    n_rows, n_cols = image.shape
    dx, dy = trail.x1 - trail.x0, trail.y1 - trail.y0
    length = math.hypot(dx, dy)
    if length == 0:
        return
    nx, ny = -dy / length, dx / length  # unit normal
    sigma = trail.width_px / FWHM_PER_SIGMA
    half_band = 5.0 * sigma + 1.0
    # Walk along the axis the line is steeper in, so the band is thin per line.
    if abs(dy) >= abs(dx):
        rows = np.arange(n_rows)
        centre = trail.x0 + (rows - trail.y0) * dx / dy
        half = half_band / abs(nx)  # |nx| >= 1/sqrt(2) on a steep line
        lo = np.clip(np.floor(centre - half).astype(np.intp), 0, n_cols)
        width = int(2 * math.ceil(half) + 2)
        cols = lo[:, None] + np.arange(width)[None, :]
        rr = np.broadcast_to(rows[:, None], cols.shape)
    else:
        cols_1d = np.arange(n_cols)
        centre = trail.y0 + (cols_1d - trail.x0) * dy / dx
        half = half_band / abs(ny)  # |ny| >= 1/sqrt(2) on a flat line
        lo = np.clip(np.floor(centre - half).astype(np.intp), 0, n_rows)
        width = int(2 * math.ceil(half) + 2)
        rr = lo[:, None] + np.arange(width)[None, :]
        cols = np.broadcast_to(cols_1d[:, None], rr.shape)
    keep = (rr >= 0) & (rr < n_rows) & (cols >= 0) & (cols < n_cols)
    rr, cc = rr[keep], cols[keep]
    distance = (cc - trail.x0) * nx + (rr - trail.y0) * ny
    value = trail.peak_adu * np.exp(-0.5 * (distance / sigma) ** 2)
    value *= response[channels[rr, cc]]
    image[rr, cc] += value.astype(np.float32)


def _add_noise(
    signal: np.ndarray, rng: np.random.Generator, sensor: sensor_mod.SensorModel
) -> np.ndarray:
    """Return ``signal`` (ADU) with shot and read noise, as a new float32 image."""
    gain = np.float32(sensor.gain_e_per_adu)
    np.maximum(signal, 0.0, out=signal)
    normal = rng.standard_normal(signal.shape, dtype=np.float32)
    sigma = signal / gain
    sigma += np.float32(sensor.read_noise_adu**2)
    np.sqrt(sigma, out=sigma)
    noisy = normal
    noisy *= sigma
    noisy += signal
    low = signal * gain < EXACT_POISSON_BELOW_E
    if low.any():
        electrons = rng.poisson(signal[low] * gain)
        read = rng.normal(0.0, sensor.read_noise_adu, electrons.size)
        noisy[low] = (electrons / gain + read).astype(np.float32)
    return noisy
