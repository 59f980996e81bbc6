"""Synthetic ZWO Seestar S50 raw frames with known ground truth.

The simulator writes files laid out exactly like the telescope's own subs
(GRBG uint16 mosaic, BZERO 32768, firmware header order and file names) and
returns the injected truth: the star catalogue on a fixed sky canvas and each
frame's ``sky_to_frame`` affine matrix (``x`` = column, ``y`` = row, integer
coordinates at pixel centres). Only the standard library and the scientific
stack are imported.
"""

from __future__ import annotations

from crowdsky.simulate.frames import FrameLight, FrameStats, PsfModel, Trail, render_frame
from crowdsky.simulate.geometry import apply_affine, compose_affine, invert_affine, rotation_about
from crowdsky.simulate.motion import MotionModel
from crowdsky.simulate.night import (
    NIGHT_TARGETS,
    NightFrame,
    NightTarget,
    SimulatedNight,
    simulate_night,
    slot_start,
)
from crowdsky.simulate.presets import FW427_M94_LIKE, FW470_ZERO_CLIPPED
from crowdsky.simulate.seestar_fits import (
    SeestarHeader,
    build_header,
    seestar_filename,
    write_seestar_fits,
)
from crowdsky.simulate.sensor import (
    BAYER_PATTERN,
    FULL_SHAPE,
    HotPixels,
    SensorModel,
    draw_hot_pixels,
)
from crowdsky.simulate.sequence import simulate_sequence
from crowdsky.simulate.spec import (
    DEFAULT_START,
    ExtendedTargetSpec,
    FrameEvents,
    Observation,
    SequenceSpec,
    SkyModel,
    StarFieldModel,
)
from crowdsky.simulate.stars import STAR_DTYPE, draw_star_field
from crowdsky.simulate.truth import FRAME_KINDS, FrameTruth, SimulatedSequence, relative_transform

__all__ = [
    "BAYER_PATTERN",
    "DEFAULT_START",
    "FRAME_KINDS",
    "FULL_SHAPE",
    "FW427_M94_LIKE",
    "FW470_ZERO_CLIPPED",
    "NIGHT_TARGETS",
    "STAR_DTYPE",
    "ExtendedTargetSpec",
    "FrameEvents",
    "FrameLight",
    "FrameStats",
    "FrameTruth",
    "HotPixels",
    "MotionModel",
    "NightFrame",
    "NightTarget",
    "Observation",
    "PsfModel",
    "SeestarHeader",
    "SensorModel",
    "SequenceSpec",
    "SimulatedNight",
    "SimulatedSequence",
    "SkyModel",
    "StarFieldModel",
    "Trail",
    "apply_affine",
    "build_header",
    "compose_affine",
    "draw_hot_pixels",
    "draw_star_field",
    "invert_affine",
    "relative_transform",
    "render_frame",
    "rotation_about",
    "seestar_filename",
    "simulate_night",
    "simulate_sequence",
    "slot_start",
    "write_seestar_fits",
]
