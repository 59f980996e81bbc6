"""Firmware look-alike :class:`~crowdsky.simulate.spec.SequenceSpec` presets.

This module owns the numbers measured on real subs, kept in one home: start from
a preset and override any part with ``dataclasses.replace``.
"""

from __future__ import annotations

from crowdsky.simulate.frames import PsfModel
from crowdsky.simulate.motion import MotionModel
from crowdsky.simulate.sensor import SensorModel
from crowdsky.simulate.spec import Observation, SequenceSpec, SkyModel, StarFieldModel

__all__ = [
    "FW427_M94_LIKE",
    "FW470_ZERO_CLIPPED",
]

#: FW 4.70 in EQ mode: 20 s subs, on-device black subtraction leaving no
#: pedestal, medians near 100 ADU and about 6.5 % of pixels exactly 0.
FW470_ZERO_CLIPPED = SequenceSpec(
    cadence_s=21.3,
    observation=Observation(exptime_s=20.0, firmware="4.70", eq_mode=True),
    sensor=SensorModel(offset_adu=0.0, zero_clip_fraction=0.065),
    motion=MotionModel(rotation_deg_per_frame=0.0),
    sky=SkyModel(sky_e=250.0),
)

#: The statistics of the real FW 4.27 M 94 subs rather than the benchmark
#: protocol: pedestal ~700 ADU, very low gain in e-/ADU (so ~90 ADU of background
#: noise on green), weak red and blue sites, a sparse field (a few dozen stars at
#: 5 sigma, none saturated) and no hot pixels (the firmware's dark subtraction
#: removed them).
FW427_M94_LIKE = SequenceSpec(
    n_hot_pixels=0,
    sensor=SensorModel(
        offset_adu=700.0, gain_e_per_adu=0.066, read_noise_e=4.0, cfa_response=(0.48, 1.0, 0.32)
    ),
    psf=PsfModel(fwhm_px=3.0),
    sky=SkyModel(sky_e=19.5),
    stars=StarFieldModel(n_stars=60, flux_min_adu=6000.0, pareto_index=1.0, flux_max_adu=2.5e5),
)
