"""Simulated Seestar frames of the real sky: Tycho-2 stars from the index files.

The simulator's own star fields are random (no place on the sky), so a plate
solver rightly finds nothing in them. To test solving against a known truth, these
helpers project the catalogue stars of an astrometry.net index file through a
chosen TAN WCS (mirrored as a Seestar's, any rotation) and render them with the
simulator's frame renderer, fluxes from the catalogue magnitudes and a chosen zero
point. The header RA/DEC is the truth plus a pointing error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from crowdsky.astrometry import catalogue, wcs
from crowdsky.simulate import frames, seestar_fits, sensor

S50_SHAPE = (1920, 1080)
S50_SCALE_ARCSEC = 2.38


def true_wcs(
    ra_deg: float,
    dec_deg: float,
    rotation_deg: float,
    shape: tuple[int, int] = S50_SHAPE,
    scale_arcsec: float = S50_SCALE_ARCSEC,
    *,
    mirrored: bool = True,
) -> wcs.TanSip:
    """A TAN WCS centred on (RA, Dec): +y at position angle ``rotation_deg``."""
    s = scale_arcsec / 3600.0
    theta = math.radians(rotation_deg)
    # +y direction on the sky (east, north) components: (sin PA, cos PA)
    y_axis = np.array([math.sin(theta), math.cos(theta)]) * s
    # +x is +y turned by -90° on the sky (normal parity), or +90° (mirrored)
    sign = -1.0 if mirrored else 1.0
    x_axis = np.array([-sign * y_axis[1], sign * y_axis[0]])
    cd = np.column_stack([x_axis, y_axis])
    rows, cols = shape
    zero = np.zeros((3, 3))
    return wcs.TanSip(
        (ra_deg, dec_deg), ((cols - 1) / 2, (rows - 1) / 2), cd, zero, zero, zero, zero, shape
    )


@dataclass(frozen=True)
class SkyStars:
    """Catalogue stars in a frame's pixels."""

    xy: np.ndarray
    mag: np.ndarray


def sky_stars(index_file: Path, truth: wcs.TanSip, *, margin_px: float = 20.0) -> SkyStars:
    """The index file's stars that fall in the frame of ``truth``, brightest first."""
    rows, cols = truth.shape
    radius = 0.5 * math.hypot(rows, cols) * truth.scale_arcsec / 3600.0 + 0.1
    stars = catalogue.IndexCatalogue(index_file).cone(truth.crval[0], truth.crval[1], radius)
    x, y = truth.world_to_pixel(stars.ra_deg, stars.dec_deg)
    inside = (x > -margin_px) & (x < cols + margin_px) & (y > -margin_px) & (y < rows + margin_px)
    return SkyStars(np.column_stack([x[inside], y[inside]]), stars.mag[inside])


def write_sky_frames(
    out_dir: Path,
    index_file: Path,
    truth: wcs.TanSip,
    n_frames: int,
    *,
    pointing_error_arcmin: tuple[float, float] = (9.0, -11.0),
    zero_point: float = 19.0,
    exptime_s: float = 10.0,
    shifts_px: list[tuple[float, float]] | None = None,
    seed: int = 7,
    faint_stars: int = 150,
    stars_rgb: np.ndarray | None = None,
) -> list[Path]:
    """Render ``n_frames`` raw GRBG frames of the real sky seen through ``truth``.

    Frame ``i`` is shifted by ``shifts_px[i]`` pixels (default small dithers). Star
    flux (green, ADU) is ``10**(-0.4 (V_T - zero_point)) * exptime_s``. Random faint
    stars are added so that the field looks like a field, not a star chart.
    ``stars_rgb`` (one row per star of :func:`sky_stars`, brightest first) colours the
    catalogue stars; by default they are white, as the faint ones always are.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    stars = sky_stars(index_file, truth)
    rows, cols = truth.shape
    faint_xy = rng.uniform([0, 0], [cols, rows], size=(faint_stars, 2))
    faint_flux = 10 ** rng.uniform(2.3, 3.3, faint_stars)
    flux = np.concatenate([10 ** (-0.4 * (stars.mag - zero_point)) * exptime_s, faint_flux])
    base_xy = np.vstack([stars.xy, faint_xy])
    rgb = np.ones((len(flux), 3))
    if stars_rgb is not None:
        rgb[: len(stars.xy)] = stars_rgb
    if shifts_px is None:
        shifts_px = [(float(a), float(b)) for a, b in rng.normal(0.0, 2.0, (n_frames, 2))]
    hot = sensor.draw_hot_pixels(seed, truth.shape, count=0)
    model = sensor.SensorModel()
    pointing_ra = truth.crval[0] + pointing_error_arcmin[0] / 60.0 / math.cos(
        math.radians(truth.crval[1])
    )
    pointing_dec = truth.crval[1] + pointing_error_arcmin[1] / 60.0
    paths = []
    start = datetime(2025, 3, 27, 1, 20, tzinfo=UTC)
    for i in range(n_frames):
        shift = np.asarray(shifts_px[i])
        light = frames.FrameLight(
            stars_xy=base_xy + shift,
            stars_flux_adu=flux,
            stars_rgb=rgb,
            sky=frames.SkyModel(sky_e=400.0, gradient=(0.05, -0.05), rgb=(1.0, 1.0, 1.0)),
        )
        mosaic, _ = frames.render_frame(
            truth.shape,
            rng=np.random.default_rng([seed, i]),
            light=light,
            psf=frames.PsfModel(fwhm_px=2.8),
            sensor=model,
            hot_pixels=hot,
        )
        info = seestar_fits.SeestarHeader(
            object_name="SKY",
            date_obs=start + timedelta(seconds=11.3 * i),
            exptime_s=exptime_s,
            ra_deg=pointing_ra % 360.0,
            dec_deg=pointing_dec,
        )
        path = out_dir / f"sky_{i:03d}.fit"
        seestar_fits.write_seestar_fits(path, mosaic, seestar_fits.build_header(info, truth.shape))
        paths.append(path)
    return paths


def shifted(truth: wcs.TanSip, shift_px: tuple[float, float]) -> wcs.TanSip:
    """The WCS of a frame whose stars moved by ``shift_px`` pixels."""
    crpix = (truth.crpix[0] + shift_px[0], truth.crpix[1] + shift_px[1])
    return wcs.TanSip(
        truth.crval, crpix, truth.cd, truth.a, truth.b, truth.ap, truth.bp, truth.shape
    )
