"""Simulate one Seestar imaging sequence and record its ground truth.

This module owns a sequence: consecutive subs of one target at a fixed cadence,
each rendered by :mod:`crowdsky.simulate.frames` through the pointing planned
by :mod:`crowdsky.simulate.motion` and written as a real-looking raw file,
plus the truth records of :mod:`crowdsky.simulate.truth` (star catalogue on
the fixed sky canvas and each frame's ``sky_to_frame`` transform).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from crowdsky.simulate import frames, geometry, motion, seestar_fits, sensor, stars, targets
from crowdsky.simulate.truth import FrameTruth, SimulatedSequence

__all__ = [
    "DEFAULT_START",
    "simulate_sequence",
]

#: Exposure start of the first frame of the real M 94 run (UTC).
DEFAULT_START = datetime(2025, 3, 27, 1, 20, 2, tzinfo=UTC)

# Stars farther than this outside a frame cannot touch it (largest stamp + 1).
_CATALOGUE_MARGIN_PX = max(frames.STAMP_RADII_PX) + 2
_STREAM_FRAME = 0xF4A
_STREAM_EVENTS = 0xE7E
_STREAM_FOREIGN = 0xF0E
_STREAM_SKY = 0x5C1


def simulate_sequence(
    out_dir: Path,
    n_frames: int = 15,
    *,
    seed: int = 0,
    object_name: str = "M 94",
    ra_deg: float = 192.72,
    dec_deg: float = 41.12,
    start: datetime = DEFAULT_START,
    exptime_s: float = 10.0,
    cadence_s: float = 11.3,
    cadence_jitter_s: float = 0.02,
    filter_name: str = "IRCUT",
    telescop: str = "S50_00c0ffee",
    n_stars: int = 400,
    fwhm_px: float = 2.6,
    fwhm_jitter_frac: float = 0.03,
    psf: str = "gaussian",
    moffat_beta: float = 3.0,
    shape: tuple[int, int] = sensor.FULL_SHAPE,
    satellite_frames: Iterable[int] = (),
    cloudy_frames: Iterable[int] = (),
    foreign_frames: Iterable[int] = (),
    hot_pixels_only_frames: Iterable[int] = (),
    smeared_frames: Iterable[int] = (),
    utc_offset_hours: float = -4.0,
    stamp_delay_s: float = 13.0,
    drift_px_per_min: tuple[float, float] = (1.2, -1.6),
    dither_sigma_px: float = 0.7,
    rotation_deg_per_frame: float = 0.02,
    rotation_centre_xy: tuple[float, float] | None = None,
    frame_offsets: Mapping[int, tuple[float, float, float]] | None = None,
    flux_min_adu: float = 2000.0,
    pareto_index: float = 0.9,
    flux_max_adu: float = 5.0e6,
    sky_e: float = 400.0,
    sky_gradient: tuple[float, float] = (0.08, -0.15),
    sky_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0),
    gain_e_per_adu: float = 0.8,
    read_noise_e: float = 3.0,
    offset_adu: float = 200.0,
    zero_clip_fraction: float = 0.0,
    cfa_response: tuple[float, float, float] = (0.55, 1.0, 0.45),
    n_hot_pixels: int | None = None,
    hot_pixel_seed: int | None = None,
    cloud_sky_factor: float = 3.0,
    cloud_transparency: float = 0.3,
    satellite_peak_adu: float = 3000.0,
    smear_px: float = 6.0,
    firmware: str = "4.27",
    eq_mode: bool = False,
    ccd_temp_c: float = 25.125,
    site_lon_deg: float = -80.0,
    site_lat_deg: float = 33.0,
    extended_target: str | None = None,
    extended_peak_adu: float = 600.0,
    extended_size_px: float | None = None,
) -> SimulatedSequence:
    """Write a seeded sequence of synthetic Seestar S50 raw frames.

    Frame ``i`` starts at ``start + i * cadence_s`` (plus a few ms of jitter),
    shows the seeded sky through ``sky_to_frame_i`` (drift, dither, rotation)
    and is written under the firmware's own file name. Everything is a pure
    function of the arguments; each frame draws its noise from its own stream,
    so the first frames of a longer sequence equal a shorter one's.

    Parameters
    ----------
    out_dir : pathlib.Path
        Directory for the files (created if missing).
    n_frames : int
        Number of subs.
    seed : int
        Seed of the sky, the motion and the noise.
    object_name, ra_deg, dec_deg : str, float, float
        OBJECT, RA and DEC keywords (RA/DEC are the pointing, degrees).
    start : datetime
        Aware UTC exposure start of frame 0.
    exptime_s, cadence_s : float
        Exposure and start-to-start interval, seconds (10 s subs: 11.3 s).
    cadence_jitter_s : float
        Standard deviation of each start time around the nominal grid, seconds.
    filter_name, telescop : str
        FILTER and TELESCOP keywords.
    n_stars : int
        Mean number of stars per frame-sized area of sky.
    fwhm_px, fwhm_jitter_frac : float
        PSF FWHM in pixels and its frame-to-frame log-normal scatter.
    psf : {'gaussian', 'moffat'}
        PSF profile; ``moffat_beta`` sets the Moffat wings.
    shape : tuple of int
        Frame shape (rows, columns); the S50's is ``(1920, 1080)``; use small
        shapes in unit tests (keep them even so the CFA stays whole).
    satellite_frames, cloudy_frames, foreign_frames, hot_pixels_only_frames, smeared_frames
        Indices of frames that get a satellite trail, clouds (sky × ``cloud_sky_factor``,
        star light × ``cloud_transparency``), a different random star field, no stars at
        all (lens cap / total overcast), or stars smeared over ``smear_px`` (wind shake).
        A frame may be in one list only.
    utc_offset_hours, stamp_delay_s : float
        Local-time offset and save delay for the file-name stamp.
    drift_px_per_min, dither_sigma_px, rotation_deg_per_frame, rotation_centre_xy, frame_offsets
        Pointing model, see :class:`crowdsky.simulate.motion.MotionModel`.
    flux_min_adu, pareto_index, flux_max_adu : float
        Star flux distribution, see :func:`crowdsky.simulate.stars.draw_star_field`.
    sky_e, sky_gradient, sky_rgb
        Sky on a green site at the centre (electrons), its fractional change
        across the frame ``(x, y)`` and its colour.
    gain_e_per_adu, read_noise_e, offset_adu, zero_clip_fraction, cfa_response
        Sensor model, see :class:`crowdsky.simulate.sensor.SensorModel`. For the
        FW 4.70 look pass ``**FW470_ZERO_CLIPPED``.
    n_hot_pixels, hot_pixel_seed : int, optional
        Hot-pixel count (default 300 per full frame) and sensor seed (default
        ``seed``); reuse the seed across sequences of one telescope.
    cloud_sky_factor, cloud_transparency, satellite_peak_adu, smear_px : float
        Strength of the special frames.
    firmware, eq_mode, ccd_temp_c, site_lon_deg, site_lat_deg
        Header details (PROGRAM, EQMODE, starting CCD-TEMP, SITELONG, SITELAT).
    extended_target : {'galaxy', 'nebula', 'cluster'} or None
        An extended target (:mod:`crowdsky.simulate.targets`) fixed on the sky at the
        centre of frame 0; None (the default) renders stars only.
    extended_peak_adu, extended_size_px : float
        Its brightest surface brightness (ADU per pixel above the sky, white
        response) and radius (default a fifth of the shorter frame side).

    Returns
    -------
    SimulatedSequence
        Paths and truth.

    Raises
    ------
    ValueError
        On a bad argument: no frames, naive ``start``, an unknown PSF, a special
        frame index out of range or listed twice, or two frames that would
        share a file name (cadence under a second).
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (UTC)")
    if len(shape) != 2 or min(shape) < 8:
        raise ValueError(f"shape must be (rows, cols) of at least 8 x 8, got {shape}")
    shape = (int(shape[0]), int(shape[1]))
    kinds = _frame_kinds(
        n_frames,
        satellite=satellite_frames,
        cloudy=cloudy_frames,
        foreign=foreign_frames,
        hot_pixels_only=hot_pixels_only_frames,
        smeared=smeared_frames,
    )
    base_psf = frames.PsfModel(fwhm_px=fwhm_px, profile=psf, moffat_beta=moffat_beta)
    sensor_model = sensor.SensorModel(
        gain_e_per_adu=gain_e_per_adu,
        read_noise_e=read_noise_e,
        offset_adu=offset_adu,
        zero_clip_fraction=zero_clip_fraction,
        cfa_response=cfa_response,
    )
    motion_model = motion.MotionModel(
        drift_px_per_min=drift_px_per_min,
        dither_sigma_px=dither_sigma_px,
        rotation_deg_per_frame=rotation_deg_per_frame,
        rotation_centre_xy=rotation_centre_xy,
        frame_offsets=dict(frame_offsets or {}),
    )

    date_obs = _start_times(start, n_frames, cadence_s, cadence_jitter_s, seed)
    names = [
        seestar_fits.seestar_filename(
            object_name,
            exptime_s,
            filter_name,
            when,
            utc_offset_hours=utc_offset_hours,
            stamp_delay_s=stamp_delay_s,
        )
        for when in date_obs
    ]
    if len(set(names)) != len(names):
        raise ValueError(
            "two frames would get the same file name (the stamp has 1 s resolution); "
            f"use a cadence of at least 1 s, got cadence_s={cadence_s}"
        )
    elapsed = [(when - date_obs[0]).total_seconds() for when in date_obs]
    matrices = motion.plan_transforms(motion_model, seed=seed, shape=shape, elapsed_s=elapsed)

    density = n_stars / (shape[0] * shape[1])
    field_kwargs = {
        "density_per_px2": density,
        "flux_min_adu": flux_min_adu,
        "pareto_index": pareto_index,
        "flux_max_adu": flux_max_adu,
    }
    catalogue = stars.draw_star_field(seed, _canvas_bounds(matrices, shape), **field_kwargs)
    catalogue_xy = np.column_stack([catalogue["x"], catalogue["y"]])
    patch = None
    if extended_target is not None:
        centre = geometry.apply_affine(
            geometry.invert_affine(matrices[0]),
            np.array([[(shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0]]),
        )[0]
        patch = targets.render_patch(
            targets.ExtendedTarget(
                kind=extended_target,
                centre_xy=(float(centre[0]), float(centre[1])),
                size_px=extended_size_px or min(shape) / 5.0,
                peak_adu=extended_peak_adu,
                seed=seed,
            )
        )
    catalogue_rgb = np.column_stack([catalogue["r"], catalogue["g"], catalogue["b"]])
    hot = sensor.draw_hot_pixels(
        seed if hot_pixel_seed is None else hot_pixel_seed, shape, n_hot_pixels
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth: list[FrameTruth] = []
    for index in range(n_frames):
        kind = kinds[index]
        events = np.random.default_rng([seed, _STREAM_EVENTS, index])
        frame_fwhm = fwhm_px * math.exp(events.normal(0.0, fwhm_jitter_frac))
        frame_psf = frames.PsfModel(
            fwhm_px=frame_fwhm,
            profile=base_psf.profile,
            moffat_beta=base_psf.moffat_beta,
            smear_px=smear_px if kind == "smeared" else 0.0,
            smear_angle_deg=float(events.uniform(0.0, 180.0)),
        )
        sky_level_e = sky_e * (1.0 + 0.01 * events.normal())
        transparency = 1.0
        if kind == "cloudy":
            sky_level_e *= cloud_sky_factor
            transparency = cloud_transparency

        star_xy, star_flux, star_rgb = _frame_stars(
            kind,
            index,
            seed,
            shape,
            matrices[index],
            catalogue,
            catalogue_xy,
            catalogue_rgb,
            field_kwargs,
        )
        trail = None
        if kind == "satellite":
            trail = _random_trail(events, shape, satellite_peak_adu)
        mosaic, stats = frames.render_frame(
            shape,
            rng=np.random.default_rng([seed, _STREAM_FRAME, index]),
            stars_xy=star_xy,
            stars_flux_adu=star_flux * transparency,
            stars_rgb=star_rgb,
            psf=frame_psf,
            sky_e=sky_level_e,
            sky_gradient=sky_gradient,
            sky_rgb=sky_rgb,
            hot_pixels=hot,
            sensor=sensor_model,
            trail=trail,
            extended=None
            if patch is None or kind in ("foreign", "hot_pixels_only")
            else targets.sample_into_frame(*patch, matrices[index], shape) * transparency,
        )
        info = seestar_fits.SeestarHeader(
            object_name=object_name,
            date_obs=date_obs[index],
            exptime_s=exptime_s,
            ra_deg=ra_deg,
            dec_deg=dec_deg,
            filter_name=filter_name,
            telescop=telescop,
            ccd_temp_c=_ccd_temperature(ccd_temp_c, elapsed[index], events),
            site_lon_deg=site_lon_deg,
            site_lat_deg=site_lat_deg,
            firmware=firmware,
            eq_mode=eq_mode,
        )
        path = out_dir / names[index]
        seestar_fits.write_seestar_fits(path, mosaic, seestar_fits.build_header(info, shape))
        truth.append(
            FrameTruth(
                path=path,
                index=index,
                date_obs=date_obs[index],
                sky_to_frame=matrices[index],
                kind=kind,
                trail=None if trail is None else (trail.x0, trail.y0, trail.x1, trail.y1),
                sky_adu=stats.sky_adu,
                noise_adu=stats.noise_adu,
                fwhm_px=frame_fwhm,
                transparency=transparency,
            )
        )
    return SimulatedSequence(
        paths=[record.path for record in truth],
        truth=truth,
        stars=catalogue,
        object_name=object_name,
        ra_deg=ra_deg,
        dec_deg=dec_deg,
        shape=shape,
        hot_pixels_xy=hot.xy,
    )


def _frame_kinds(n_frames: int, **lists: Iterable[int]) -> list[str]:
    """Resolve the special-frame index lists into one kind per frame."""
    kinds = ["normal"] * n_frames
    for kind, indices in lists.items():
        for index in indices:
            if not 0 <= index < n_frames:
                raise ValueError(f"{kind} frame index {index} outside 0..{n_frames - 1}")
            if kinds[index] != "normal":
                raise ValueError(f"frame {index} is both {kinds[index]!r} and {kind!r}")
            kinds[index] = kind
    return kinds


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
    kind: str,
    index: int,
    seed: int,
    shape: tuple[int, int],
    matrix: np.ndarray,
    catalogue: np.ndarray,
    catalogue_xy: np.ndarray,
    catalogue_rgb: np.ndarray,
    field_kwargs: dict[str, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stars of one frame in frame pixels: the sequence's sky, another sky, or none."""
    if kind == "hot_pixels_only":
        return np.zeros((0, 2)), np.zeros(0), np.zeros((0, 3))
    if kind == "foreign":
        n_rows, n_cols = shape
        foreign_seed = int(
            np.random.SeedSequence([seed, _STREAM_FOREIGN, index]).generate_state(1)[0]
        )
        bounds = (
            -_CATALOGUE_MARGIN_PX,
            -_CATALOGUE_MARGIN_PX,
            n_cols + _CATALOGUE_MARGIN_PX,
            n_rows + _CATALOGUE_MARGIN_PX,
        )
        other = stars.draw_star_field(foreign_seed, bounds, **field_kwargs)
        xy = np.column_stack([other["x"], other["y"]])
        rgb = np.column_stack([other["r"], other["g"], other["b"]])
        return xy, other["flux"], rgb
    return geometry.apply_affine(matrix, catalogue_xy), catalogue["flux"], catalogue_rgb


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
