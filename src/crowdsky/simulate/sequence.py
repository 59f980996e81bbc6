"""Simulate one Seestar imaging sequence and record its ground truth.

This module owns a sequence: consecutive subs of one target at a fixed cadence,
each rendered by :mod:`crowdsky.simulate.frames` through the pointing planned
by :mod:`crowdsky.simulate.motion` and written as a real-looking raw file,
plus the truth records of :mod:`crowdsky.simulate.truth` (star catalogue on
the fixed sky canvas and each frame's ``sky_to_frame`` transform). What to
render is one :class:`crowdsky.simulate.spec.SequenceSpec`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from crowdsky.simulate import frames, geometry, motion, seestar_fits, sensor, stars, targets
from crowdsky.simulate.spec import DEFAULT_START, SequenceSpec
from crowdsky.simulate.truth import FrameTruth, SimulatedSequence

__all__ = [
    "DEFAULT_START",
    "simulate_sequence",
]

# Stars farther than this outside a frame cannot touch it (largest stamp + 1).
_CATALOGUE_MARGIN_PX = max(frames.STAMP_RADII_PX) + 2
_STREAM_FRAME = 0xF4A
_STREAM_EVENTS = 0xE7E
_STREAM_FOREIGN = 0xF0E
_STREAM_SKY = 0x5C1
_DEFAULT_SPEC = SequenceSpec()
#: Kinds of frame that show no extended target (another sky, or no sky at all).
_KINDS_WITHOUT_TARGET = ("foreign", "hot_pixels_only")


@dataclass(frozen=True)
class _Scene:
    """What every frame of one sequence shares: times, names, pointing, sky, sensor."""

    shape: tuple[int, int]
    date_obs: list[datetime]
    elapsed_s: list[float]
    names: list[str]
    matrices: list[np.ndarray]
    catalogue: np.ndarray
    catalogue_xy: np.ndarray
    catalogue_rgb: np.ndarray
    field_kwargs: dict[str, float]
    patch: tuple[np.ndarray, tuple[float, float]] | None
    hot: sensor.HotPixels


def simulate_sequence(out_dir: Path, spec: SequenceSpec = _DEFAULT_SPEC) -> SimulatedSequence:
    """Write a seeded sequence of synthetic Seestar S50 raw frames.

    Frame ``i`` starts at ``spec.start + i * spec.cadence_s`` (plus a few ms of
    jitter), shows the seeded sky through ``sky_to_frame_i`` (drift, dither,
    rotation) and is written under the firmware's own file name. Everything is
    a pure function of ``spec``; each frame draws its noise from its own stream,
    so the first frames of a longer sequence equal a shorter one's.

    Parameters
    ----------
    out_dir : pathlib.Path
        Directory for the files (created if missing).
    spec : SequenceSpec
        What to render; presets such as :data:`crowdsky.simulate.FW470_ZERO_CLIPPED`
        are specs, overridden with ``dataclasses.replace``.

    Returns
    -------
    SimulatedSequence
        Paths and truth.

    Raises
    ------
    ValueError
        When two frames would share a file name (cadence under a second); the
        spec refuses its own bad values when built.
    """
    scene = _plan_scene(spec)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = [
        _write_frame(spec, scene, index, kind, out_dir)
        for index, kind in enumerate(spec.frame_kinds)
    ]
    return SimulatedSequence(
        paths=[record.path for record in truth],
        truth=truth,
        stars=scene.catalogue,
        object_name=spec.observation.object_name,
        ra_deg=spec.observation.ra_deg,
        dec_deg=spec.observation.dec_deg,
        shape=scene.shape,
        hot_pixels_xy=scene.hot.xy,
    )


def _plan_scene(spec: SequenceSpec) -> _Scene:
    """Times, file names, transforms, catalogue, extended target and hot pixels."""
    shape = (int(spec.shape[0]), int(spec.shape[1]))
    date_obs = _start_times(
        spec.start, spec.n_frames, spec.cadence_s, spec.cadence_jitter_s, spec.seed
    )
    names = _file_names(spec, date_obs)
    elapsed = [(when - date_obs[0]).total_seconds() for when in date_obs]
    matrices = motion.plan_transforms(spec.motion, seed=spec.seed, shape=shape, elapsed_s=elapsed)
    field_kwargs = {
        "density_per_px2": spec.stars.n_stars / (shape[0] * shape[1]),
        "flux_min_adu": spec.stars.flux_min_adu,
        "pareto_index": spec.stars.pareto_index,
        "flux_max_adu": spec.stars.flux_max_adu,
    }
    catalogue = stars.draw_star_field(spec.seed, _canvas_bounds(matrices, shape), **field_kwargs)
    hot_seed = spec.seed if spec.hot_pixel_seed is None else spec.hot_pixel_seed
    return _Scene(
        shape=shape,
        date_obs=date_obs,
        elapsed_s=elapsed,
        names=names,
        matrices=matrices,
        catalogue=catalogue,
        catalogue_xy=np.column_stack([catalogue["x"], catalogue["y"]]),
        catalogue_rgb=np.column_stack([catalogue["r"], catalogue["g"], catalogue["b"]]),
        field_kwargs=field_kwargs,
        patch=_extended_patch(spec, matrices[0], shape),
        hot=sensor.draw_hot_pixels(hot_seed, shape, spec.n_hot_pixels),
    )


def _file_names(spec: SequenceSpec, date_obs: list[datetime]) -> list[str]:
    """The firmware's file name of each frame; ValueError when two would clash."""
    seen = spec.observation
    names = [
        seestar_fits.seestar_filename(
            seen.object_name,
            seen.exptime_s,
            seen.filter_name,
            when,
            utc_offset_hours=seen.utc_offset_hours,
            stamp_delay_s=seen.stamp_delay_s,
        )
        for when in date_obs
    ]
    if len(set(names)) != len(names):
        raise ValueError(
            "two frames would get the same file name (the stamp has 1 s resolution); "
            f"use a cadence of at least 1 s, got cadence_s={spec.cadence_s}"
        )
    return names


def _extended_patch(
    spec: SequenceSpec, first_matrix: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, tuple[float, float]] | None:
    """The extended target's patch on the sky canvas, centred on frame 0; None without one."""
    if spec.extended is None:
        return None
    centre = geometry.apply_affine(
        geometry.invert_affine(first_matrix),
        np.array([[(shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0]]),
    )[0]
    return targets.render_patch(
        targets.ExtendedTarget(
            kind=spec.extended.kind,
            centre_xy=(float(centre[0]), float(centre[1])),
            size_px=spec.extended.size_px or min(shape) / 5.0,
            peak_adu=spec.extended.peak_adu,
            seed=spec.seed,
        )
    )


def _write_frame(
    spec: SequenceSpec, scene: _Scene, index: int, kind: str, out_dir: Path
) -> FrameTruth:
    """Render frame ``index`` of kind ``kind``, write it and return its truth."""
    # The draw order on this stream (FWHM, smear angle, sky, trail, temperature)
    # fixes every simulated frame: keep it.
    events = np.random.default_rng([spec.seed, _STREAM_EVENTS, index])
    frame_fwhm = spec.psf.fwhm_px * math.exp(events.normal(0.0, spec.fwhm_jitter_frac))
    frame_psf = dataclasses.replace(
        spec.psf,
        fwhm_px=frame_fwhm,
        smear_px=spec.events.smear_px if kind == "smeared" else spec.psf.smear_px,
        smear_angle_deg=float(events.uniform(0.0, 180.0)),
    )
    sky_level_e = spec.sky.sky_e * (1.0 + 0.01 * events.normal())
    transparency = 1.0
    if kind == "cloudy":
        sky_level_e *= spec.events.cloud_sky_factor
        transparency = spec.events.cloud_transparency
    star_xy, star_flux, star_rgb = _frame_stars(kind, index, spec.seed, scene)
    trail = None
    if kind == "satellite":
        trail = _random_trail(events, scene.shape, spec.events.satellite_peak_adu)
    extended = None
    if scene.patch is not None and kind not in _KINDS_WITHOUT_TARGET:
        extended = (
            targets.sample_into_frame(*scene.patch, scene.matrices[index], scene.shape)
            * transparency
        )
    light = frames.FrameLight(
        stars_xy=star_xy,
        stars_flux_adu=star_flux * transparency,
        stars_rgb=star_rgb,
        sky=dataclasses.replace(spec.sky, sky_e=sky_level_e),
        trail=trail,
        extended=extended,
    )
    mosaic, stats = frames.render_frame(
        scene.shape,
        rng=np.random.default_rng([spec.seed, _STREAM_FRAME, index]),
        light=light,
        psf=frame_psf,
        sensor=spec.sensor,
        hot_pixels=scene.hot,
    )
    ccd_temp_c = _ccd_temperature(spec.observation.ccd_temp_c, scene.elapsed_s[index], events)
    path = out_dir / scene.names[index]
    header = _frame_header(spec, scene.date_obs[index], ccd_temp_c)
    seestar_fits.write_seestar_fits(path, mosaic, seestar_fits.build_header(header, scene.shape))
    return FrameTruth(
        path=path,
        index=index,
        date_obs=scene.date_obs[index],
        sky_to_frame=scene.matrices[index],
        kind=kind,
        trail=None if trail is None else (trail.x0, trail.y0, trail.x1, trail.y1),
        sky_adu=stats.sky_adu,
        noise_adu=stats.noise_adu,
        fwhm_px=frame_fwhm,
        transparency=transparency,
    )


def _frame_header(
    spec: SequenceSpec, date_obs: datetime, ccd_temp_c: float
) -> seestar_fits.SeestarHeader:
    """The header values of one frame."""
    seen = spec.observation
    return seestar_fits.SeestarHeader(
        object_name=seen.object_name,
        date_obs=date_obs,
        exptime_s=seen.exptime_s,
        ra_deg=seen.ra_deg,
        dec_deg=seen.dec_deg,
        filter_name=seen.filter_name,
        telescop=seen.telescop,
        ccd_temp_c=ccd_temp_c,
        site_lon_deg=seen.site_lon_deg,
        site_lat_deg=seen.site_lat_deg,
        firmware=seen.firmware,
        eq_mode=seen.eq_mode,
    )


def _start_times(
    start: datetime, n_frames: int, cadence_s: float, jitter_s: float, seed: int
) -> list[datetime]:
    """Exposure starts on the cadence grid with a little jitter, kept in order."""
    rng = np.random.default_rng([seed, _STREAM_SKY])
    jitter = rng.normal(0.0, jitter_s, n_frames) if jitter_s > 0 else np.zeros(n_frames)
    jitter[0] = 0.0
    jitter = np.clip(jitter, -0.25 * cadence_s, 0.25 * cadence_s)
    start_utc = start.astimezone(UTC)
    return [
        start_utc + timedelta(seconds=index * cadence_s + float(jitter[index]))
        for index in range(n_frames)
    ]


def _canvas_bounds(
    matrices: list[np.ndarray], shape: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Bounding box on the sky canvas of every frame, plus the stamp margin."""
    n_rows, n_cols = shape
    corners = np.array(
        [[-0.5, -0.5], [n_cols - 0.5, -0.5], [-0.5, n_rows - 0.5], [n_cols - 0.5, n_rows - 0.5]]
    )
    sky = np.vstack([geometry.apply_affine(geometry.invert_affine(m), corners) for m in matrices])
    low = sky.min(axis=0) - _CATALOGUE_MARGIN_PX
    high = sky.max(axis=0) + _CATALOGUE_MARGIN_PX
    return (float(low[0]), float(low[1]), float(high[0]), float(high[1]))


def _frame_stars(
    kind: str, index: int, seed: int, scene: _Scene
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stars of one frame in frame pixels: the sequence's sky, another sky, or none."""
    if kind == "hot_pixels_only":
        return np.zeros((0, 2)), np.zeros(0), np.zeros((0, 3))
    if kind == "foreign":
        n_rows, n_cols = scene.shape
        foreign_seed = int(
            np.random.SeedSequence([seed, _STREAM_FOREIGN, index]).generate_state(1)[0]
        )
        bounds = (
            -_CATALOGUE_MARGIN_PX,
            -_CATALOGUE_MARGIN_PX,
            n_cols + _CATALOGUE_MARGIN_PX,
            n_rows + _CATALOGUE_MARGIN_PX,
        )
        other = stars.draw_star_field(foreign_seed, bounds, **scene.field_kwargs)
        xy = np.column_stack([other["x"], other["y"]])
        rgb = np.column_stack([other["r"], other["g"], other["b"]])
        return xy, other["flux"], rgb
    xy = geometry.apply_affine(scene.matrices[index], scene.catalogue_xy)
    return xy, scene.catalogue["flux"], scene.catalogue_rgb


def _random_trail(
    rng: np.random.Generator, shape: tuple[int, int], peak_adu: float
) -> frames.Trail:
    """A straight trail through a random point of the central half, edge to edge."""
    n_rows, n_cols = shape
    cx = rng.uniform(0.25, 0.75) * (n_cols - 1)
    cy = rng.uniform(0.25, 0.75) * (n_rows - 1)
    theta = rng.uniform(0.0, math.pi)
    ux, uy = math.cos(theta), math.sin(theta)
    # Clip the infinite line to the frame rectangle [-0.5, n - 0.5] (Liang–Barsky).
    t_low, t_high = -math.inf, math.inf
    for origin, step, low, high in ((cx, ux, -0.5, n_cols - 0.5), (cy, uy, -0.5, n_rows - 0.5)):
        if abs(step) < 1e-12:
            continue
        t0, t1 = sorted(((low - origin) / step, (high - origin) / step))
        t_low, t_high = max(t_low, t0), min(t_high, t1)
    return frames.Trail(
        x0=cx + t_low * ux,
        y0=cy + t_low * uy,
        x1=cx + t_high * ux,
        y1=cy + t_high * uy,
        peak_adu=peak_adu,
    )


def _ccd_temperature(start_c: float, elapsed_s: float, rng: np.random.Generator) -> float:
    """Uncooled sensor warming by ~0.5 °C over ten minutes, in 1/16 °C steps."""
    warming = 0.5 * (1.0 - math.exp(-elapsed_s / 600.0))
    return seestar_fits.quantize_temperature_c(start_c + warming + rng.normal(0.0, 0.04))
