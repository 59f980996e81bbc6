"""Simulate a whole observing night: several targets, many 15-minute slots.

This module owns the multi-target scenario used by ``crowdsky demo`` and by
the upload and chunking tests: one telescope (one set of hot pixels) images
several real targets in turn, each sequence straddling a 15-minute UTC slot
boundary, so chunking by slot must split it; one sequence holds a satellite
trail and another a cloudy frame. Files go under ``<out_dir>/<target>_sub/``
as on the Seestar's ``MyWorks`` share.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crowdsky.simulate import sensor, sequence, truth
from crowdsky.simulate.spec import (
    ExtendedTargetSpec,
    FrameEvents,
    Observation,
    SequenceSpec,
    SkyModel,
    StarFieldModel,
)

__all__ = [
    "NIGHT_TARGETS",
    "SLOT_MINUTES",
    "NightFrame",
    "NightTarget",
    "SimulatedNight",
    "simulate_night",
    "slot_start",
]

#: Length of the UTC slots frames are chunked into, minutes.
SLOT_MINUTES = 15
CADENCE_S = 11.3
EXPTIME_S = 10.0
# The first exposure after a slot boundary starts this long after it, well
# clear of the few-ms cadence jitter.
_BOUNDARY_MARGIN_S = 0.6


@dataclass(frozen=True)
class NightTarget:
    """A target of the simulated night (J2000 catalogue position), the extended
    object drawn at the field's centre (``crowdsky.simulate.targets``; None: stars
    only) and the sky's light-pollution gradient across the frame ``(x, y)``."""

    object_name: str
    ra_deg: float
    dec_deg: float
    extended: str | None = None
    sky_gradient: tuple[float, float] = (0.08, -0.15)
    sky_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)


#: Real targets, in observing order.
NIGHT_TARGETS = (
    NightTarget("M 94", 192.7215, 41.1203, extended="galaxy", sky_rgb=(1.0, 0.92, 0.8)),
    NightTarget("M 13", 250.4235, 36.4613, extended="cluster", sky_gradient=(-0.12, 0.2)),
    NightTarget("NGC 7023", 315.4000, 68.1700, extended="nebula", sky_gradient=(0.1, 0.1)),
)


@dataclass(frozen=True)
class NightFrame:
    """One file of the night and where it belongs.

    Attributes
    ----------
    path : pathlib.Path
        The written file.
    object_name : str
        Target (OBJECT keyword).
    sequence_index : int
        Index into :attr:`SimulatedNight.sequences`.
    frame_index : int
        Index within that sequence (and its ``truth``).
    date_obs : datetime
        Aware UTC exposure start.
    slot_start : datetime
        Start of the 15-minute UTC slot holding ``date_obs``.
    kind : str
        Frame kind, as in :class:`crowdsky.simulate.FrameTruth`.
    """

    path: Path
    object_name: str
    sequence_index: int
    frame_index: int
    date_obs: datetime
    slot_start: datetime
    kind: str


@dataclass(frozen=True, eq=False)
class SimulatedNight:
    """Everything written by :func:`simulate_night`.

    Attributes
    ----------
    root : pathlib.Path
        Output directory; each target's files are in ``root / f"{object}_sub"``.
    sequences : list of SimulatedSequence
        One per target, in observing order.
    frames : list of NightFrame
        Every file, in time order.
    utc_offset_hours : float
        Offset used for the local-time file-name stamps.
    """

    root: Path
    sequences: list[truth.SimulatedSequence]
    frames: list[NightFrame]
    utc_offset_hours: float

    @property
    def paths(self) -> list[Path]:
        """Every file, in time order."""
        return [frame.path for frame in self.frames]

    def frames_for(self, object_name: str) -> list[NightFrame]:
        """Frames of one target, in time order."""
        return [frame for frame in self.frames if frame.object_name == object_name]

    def slots(self) -> dict[tuple[str, datetime], list[NightFrame]]:
        """Frames grouped by ``(target, slot start)``: the expected chunks."""
        groups: dict[tuple[str, datetime], list[NightFrame]] = {}
        for frame in self.frames:
            groups.setdefault((frame.object_name, frame.slot_start), []).append(frame)
        return groups


def slot_start(moment: datetime, minutes: int = SLOT_MINUTES) -> datetime:
    """Floor an aware datetime to the start of its UTC slot.

    Parameters
    ----------
    moment : datetime
        Aware datetime.
    minutes : int
        Slot length; must divide 60.

    Returns
    -------
    datetime
        Aware UTC slot start.
    """
    utc = moment.astimezone(UTC)
    return utc.replace(minute=utc.minute - utc.minute % minutes, second=0, microsecond=0)


# Every sequence is one continuous run straddling one slot boundary, so it
# fills two slots.
_SLOTS_PER_TARGET = 2
_SCALES = {
    # targets, frames per slot
    "small": (2, 5),
    "full": (3, 15),
}


# long: every knob is keyword-only with a default; the demo and tests set one or two
def simulate_night(  # noqa: PLR0913 (keyword-only knobs, see above)
    out_dir: Path,
    *,
    seed: int = 0,
    scale: str = "small",
    shape: tuple[int, int] = sensor.FULL_SHAPE,
    frames_per_slot: int | None = None,
    n_stars: int | None = None,
    first_boundary: datetime = datetime(2025, 3, 27, 1, 30, tzinfo=UTC),
    target_spacing_min: int = 45,
    utc_offset_hours: float = -4.0,
    telescop: str = "S50_00c0ffee",
) -> SimulatedNight:
    """Write a simulated night of several targets, each spanning slot boundaries.

    Target ``k`` is imaged around the slot boundary ``first_boundary + k *
    target_spacing_min``: the sequence starts early enough that exactly
    ``frames_per_slot`` frames fall in each of its slots. The first target's
    sequence has a satellite trail in its second slot, the second target's a
    cloudy frame in its first slot. All sequences share one sensor (same hot
    pixels), as one telescope's night would.

    Parameters
    ----------
    out_dir : pathlib.Path
        Root directory (created if missing).
    seed : int
        Seed of the night; sequence ``k`` uses ``seed * 100 + k`` for its sky.
    scale : {'small', 'full'}
        ``'small'``: 2 targets × 2 slots × 5 frames (20 files, a couple of
        seconds); ``'full'``: 3 targets × 2 slots × 15 frames (90 files).
    shape : tuple of int
        Frame shape; pass a small one for fast tests.
    frames_per_slot : int, optional
        Override the scale's frames per slot (at most 79 for 10 s subs).
    n_stars : int, optional
        Stars per frame area; by default 400 on full frames, scaled by area
        (at least 20) on smaller ones so test frames keep a similar density.
    first_boundary : datetime
        Aware UTC slot boundary the first target's sequence straddles.
    target_spacing_min : int
        Minutes between the boundaries of consecutive targets (multiple of 15).
    utc_offset_hours : float
        Local-time offset for the file names.
    telescop : str
        TELESCOP keyword, shared by every file.

    Returns
    -------
    SimulatedNight
        Sequences and a per-file index.

    Raises
    ------
    ValueError
        On an unknown ``scale``, a boundary that is not a slot start, a
        spacing that is not a whole number of slots, or too many frames per
        slot for the cadence.
    """
    n_targets, per_slot = _night_layout(scale, first_boundary, target_spacing_min, frames_per_slot)
    observation = Observation(
        exptime_s=EXPTIME_S, telescop=telescop, utc_offset_hours=utc_offset_hours
    )
    base = _base_spec(shape, n_stars, seed, per_slot, observation)
    root = Path(out_dir)
    sequences: list[truth.SimulatedSequence] = []
    night_frames: list[NightFrame] = []
    for k, target in enumerate(NIGHT_TARGETS[:n_targets]):
        boundary = first_boundary + timedelta(minutes=k * target_spacing_min)
        spec = _target_spec(base, k, target, _sequence_start(boundary, per_slot), seed, per_slot)
        simulated = sequence.simulate_sequence(root / f"{target.object_name}_sub", spec)
        sequences.append(simulated)
        night_frames.extend(_night_frames(simulated, target.object_name, k))
    night_frames.sort(key=lambda frame: frame.date_obs)
    return SimulatedNight(
        root=root, sequences=sequences, frames=night_frames, utc_offset_hours=utc_offset_hours
    )


def _base_spec(
    shape: tuple[int, int],
    n_stars: int | None,
    seed: int,
    per_slot: int,
    observation: Observation,
) -> SequenceSpec:
    """What every sequence of the night shares: sensor (hot pixels), cadence, header."""
    if n_stars is None:
        area_ratio = shape[0] * shape[1] / (sensor.FULL_SHAPE[0] * sensor.FULL_SHAPE[1])
        n_stars = max(20, round(400 * area_ratio))
    return SequenceSpec(
        n_frames=per_slot * _SLOTS_PER_TARGET,
        shape=shape,
        cadence_s=CADENCE_S,
        hot_pixel_seed=seed,
        observation=observation,
        stars=StarFieldModel(n_stars=n_stars),
    )


def _night_frames(simulated: truth.SimulatedSequence, object_name: str, k: int) -> list[NightFrame]:
    """The index entries of sequence ``k``'s files."""
    return [
        NightFrame(
            path=record.path,
            object_name=object_name,
            sequence_index=k,
            frame_index=record.index,
            date_obs=record.date_obs,
            slot_start=slot_start(record.date_obs),
            kind=record.kind,
        )
        for record in simulated.truth
    ]


def _night_layout(
    scale: str, first_boundary: datetime, target_spacing_min: int, frames_per_slot: int | None
) -> tuple[int, int]:
    """Number of targets and frames per slot of a night; ValueError on a bad layout."""
    if scale not in _SCALES:
        raise ValueError(f"scale must be one of {sorted(_SCALES)}, got {scale!r}")
    if first_boundary.tzinfo is None or slot_start(first_boundary) != first_boundary:
        raise ValueError(f"first_boundary must be an aware UTC slot start, got {first_boundary}")
    if target_spacing_min % SLOT_MINUTES:
        raise ValueError(f"target_spacing_min must be a multiple of {SLOT_MINUTES}")
    n_targets, default_per_slot = _SCALES[scale]
    per_slot = default_per_slot if frames_per_slot is None else frames_per_slot
    if not 1 <= per_slot <= int(SLOT_MINUTES * 60 / CADENCE_S) - 1:
        raise ValueError(f"frames_per_slot must be in 1..{int(SLOT_MINUTES * 60 / CADENCE_S) - 1}")
    if target_spacing_min < SLOT_MINUTES * _SLOTS_PER_TARGET:
        raise ValueError("target_spacing_min too short: sequences would overlap")
    return n_targets, per_slot


def _target_spec(
    base: SequenceSpec, k: int, target: NightTarget, start: datetime, seed: int, per_slot: int
) -> SequenceSpec:
    """The night's ``k``-th sequence: its target, start, seed and special frames.

    One satellite in the first target's second slot, one cloud in the second
    target's first slot.
    """
    satellite = (per_slot + per_slot // 2,) if k == 0 else ()
    cloudy = (per_slot // 2,) if k == 1 else ()
    return dataclasses.replace(
        base,
        seed=seed * 100 + k,
        start=start,
        observation=dataclasses.replace(
            base.observation,
            object_name=target.object_name,
            ra_deg=target.ra_deg,
            dec_deg=target.dec_deg,
        ),
        sky=SkyModel(gradient=target.sky_gradient, rgb=target.sky_rgb),
        events=FrameEvents(satellite_frames=satellite, cloudy_frames=cloudy),
        extended=None if target.extended is None else ExtendedTargetSpec(target.extended),
    )


def _sequence_start(boundary: datetime, per_slot: int) -> datetime:
    """Start of a continuous run with ``per_slot`` exposures on each side of ``boundary``.

    The last frame before the boundary starts ``_BOUNDARY_MARGIN_S`` later
    than one cadence before it, so cadence jitter cannot move a frame across.
    """
    return boundary - timedelta(seconds=per_slot * CADENCE_S - _BOUNDARY_MARGIN_S)
