"""The frozen description of one simulated sequence: :class:`SequenceSpec`.

This module owns every input of :func:`crowdsky.simulate.simulate_sequence`, grouped
by what it models (sensor, pointing, PSF, sky, stars, special frames, header), so a
preset is one typed value and a caller overrides a part with ``dataclasses.replace``.
A spec checks itself when built; only the file-name clash needs the rendered times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from crowdsky.simulate.frames import PsfModel, SkyModel
from crowdsky.simulate.motion import MotionModel
from crowdsky.simulate.sensor import FULL_SHAPE, SensorModel

__all__ = [
    "DEFAULT_START",
    "ExtendedTargetSpec",
    "FrameEvents",
    "Observation",
    "SequenceSpec",
    "SkyModel",
    "StarFieldModel",
]

#: Exposure start of the first frame of the real M 94 run (UTC).
DEFAULT_START = datetime(2025, 3, 27, 1, 20, 2, tzinfo=UTC)
#: Smallest frame side the simulator accepts, pixels.
MIN_FRAME_SIDE_PX = 8


@dataclass(frozen=True)
class Observation:
    """What the header and the file name say about a sequence.

    Attributes
    ----------
    object_name, ra_deg, dec_deg : str, float, float
        OBJECT, RA and DEC keywords (RA/DEC are the pointing, degrees).
    exptime_s : float
        Exposure of each sub, seconds.
    filter_name, telescop : str
        FILTER and TELESCOP keywords.
    firmware, eq_mode : str, bool
        PROGRAM and EQMODE keywords.
    ccd_temp_c : float
        CCD-TEMP of the first frame; the sensor warms from there.
    site_lon_deg, site_lat_deg : float
        SITELONG and SITELAT keywords.
    utc_offset_hours, stamp_delay_s : float
        Local-time offset and save delay of the file-name stamp.
    """

    object_name: str = "M 94"
    ra_deg: float = 192.72
    dec_deg: float = 41.12
    exptime_s: float = 10.0
    filter_name: str = "IRCUT"
    telescop: str = "S50_00c0ffee"
    firmware: str = "4.27"
    eq_mode: bool = False
    ccd_temp_c: float = 25.125
    site_lon_deg: float = -80.0
    site_lat_deg: float = 33.0
    utc_offset_hours: float = -4.0
    stamp_delay_s: float = 13.0


@dataclass(frozen=True)
class StarFieldModel:
    """Star density and flux distribution, see :func:`crowdsky.simulate.draw_star_field`.

    Attributes
    ----------
    n_stars : int
        Mean number of stars per frame-sized area of sky.
    flux_min_adu, pareto_index, flux_max_adu : float
        Pareto flux distribution and its bounds.
    """

    n_stars: int = 400
    flux_min_adu: float = 2000.0
    pareto_index: float = 0.9
    flux_max_adu: float = 5.0e6


@dataclass(frozen=True)
class FrameEvents:
    """Which frames are special and how strongly.

    Attributes
    ----------
    satellite_frames, cloudy_frames, foreign_frames, hot_pixels_only_frames, smeared_frames
        Indices of frames that get a satellite trail, clouds (sky × ``cloud_sky_factor``,
        star light × ``cloud_transparency``), a different random star field, no stars at
        all (lens cap / total overcast), or stars smeared over ``smear_px`` (wind shake).
        A frame may be in one list only.
    cloud_sky_factor, cloud_transparency, satellite_peak_adu, smear_px : float
        Strength of the special frames.
    """

    satellite_frames: tuple[int, ...] = ()
    cloudy_frames: tuple[int, ...] = ()
    foreign_frames: tuple[int, ...] = ()
    hot_pixels_only_frames: tuple[int, ...] = ()
    smeared_frames: tuple[int, ...] = ()
    cloud_sky_factor: float = 3.0
    cloud_transparency: float = 0.3
    satellite_peak_adu: float = 3000.0
    smear_px: float = 6.0

    def kinds(self, n_frames: int) -> list[str]:
        """One kind per frame (``'normal'`` unless listed); ValueError on a bad index."""
        lists = {
            "satellite": self.satellite_frames,
            "cloudy": self.cloudy_frames,
            "foreign": self.foreign_frames,
            "hot_pixels_only": self.hot_pixels_only_frames,
            "smeared": self.smeared_frames,
        }
        kinds = ["normal"] * n_frames
        for kind, indices in lists.items():
            for index in indices:
                if not 0 <= index < n_frames:
                    raise ValueError(f"{kind} frame index {index} outside 0..{n_frames - 1}")
                if kinds[index] != "normal":
                    raise ValueError(f"frame {index} is both {kinds[index]!r} and {kind!r}")
                kinds[index] = kind
        return kinds


@dataclass(frozen=True)
class ExtendedTargetSpec:
    """An extended target fixed on the sky at the centre of frame 0.

    Attributes
    ----------
    kind : {'galaxy', 'nebula', 'cluster'}
        See :mod:`crowdsky.simulate.targets`.
    peak_adu : float
        Brightest surface brightness, ADU per pixel above the sky (white response).
    size_px : float, optional
        Radius; a fifth of the shorter frame side by default.
    """

    kind: str
    peak_adu: float = 600.0
    size_px: float | None = None


@dataclass(frozen=True)
class SequenceSpec:
    """Everything :func:`crowdsky.simulate.simulate_sequence` renders, as one value.

    Frame ``i`` starts at ``start + i * cadence_s`` plus a little jitter. The
    defaults are a 15-frame full-size run of M 94 with the FW 4.27 look.

    Attributes
    ----------
    n_frames : int
        Number of subs.
    seed : int
        Seed of the sky, the motion and the noise.
    shape : tuple of int
        Frame shape (rows, columns); the S50's is ``(1920, 1080)``; use small
        even shapes in unit tests so the CFA stays whole.
    start : datetime
        Aware UTC exposure start of frame 0.
    cadence_s, cadence_jitter_s : float
        Start-to-start interval (10 s subs: 11.3 s) and the standard deviation
        of each start around that grid, seconds.
    fwhm_jitter_frac : float
        Frame-to-frame log-normal scatter of ``psf.fwhm_px``.
    n_hot_pixels, hot_pixel_seed : int, optional
        Hot-pixel count (default 300 per full frame) and sensor seed (default
        ``seed``); reuse the seed across sequences of one telescope.
    observation, sensor, motion, psf, sky, stars, events : models
        The parts; ``psf`` is the base PSF of every frame (smeared frames take
        ``events.smear_px`` instead of its ``smear_px``).
    extended : ExtendedTargetSpec, optional
        An extended target; None renders stars only.

    Raises
    ------
    ValueError
        When built with no frames, a naive ``start``, a shape under 8 × 8, or a
        special-frame index out of range or listed twice.
    """

    n_frames: int = 15
    seed: int = 0
    shape: tuple[int, int] = FULL_SHAPE
    start: datetime = DEFAULT_START
    cadence_s: float = 11.3
    cadence_jitter_s: float = 0.02
    fwhm_jitter_frac: float = 0.03
    n_hot_pixels: int | None = None
    hot_pixel_seed: int | None = None
    observation: Observation = field(default_factory=Observation)
    sensor: SensorModel = field(default_factory=SensorModel)
    motion: MotionModel = field(default_factory=MotionModel)
    psf: PsfModel = field(default_factory=PsfModel)
    sky: SkyModel = field(default_factory=SkyModel)
    stars: StarFieldModel = field(default_factory=StarFieldModel)
    events: FrameEvents = field(default_factory=FrameEvents)
    extended: ExtendedTargetSpec | None = None

    def __post_init__(self) -> None:
        if self.n_frames < 1:
            raise ValueError(f"n_frames must be at least 1, got {self.n_frames}")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        if len(self.shape) != 2 or min(self.shape) < MIN_FRAME_SIDE_PX:
            raise ValueError(f"shape must be (rows, cols) of at least 8 x 8, got {self.shape}")
        self.events.kinds(self.n_frames)

    @property
    def frame_kinds(self) -> list[str]:
        """The kind of each frame, see :class:`FrameEvents`."""
        return self.events.kinds(self.n_frames)
