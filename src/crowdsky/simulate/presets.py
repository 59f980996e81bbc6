"""Named argument sets for :func:`crowdsky.simulate.simulate_sequence`.

This module owns the firmware look-alike presets, kept apart so the numbers
measured on real subs have one home: pass one with ``**`` and override
anything after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "FW427_M94_LIKE",
    "FW470_ZERO_CLIPPED",
]

#: Keyword arguments of :func:`simulate_sequence` mimicking FW 4.70 in EQ mode:
#: 20 s subs, on-device black subtraction leaving no pedestal, medians near
#: 100 ADU and about 6.5 % of pixels exactly 0.
FW470_ZERO_CLIPPED: Mapping[str, object] = MappingProxyType(
    {
        "exptime_s": 20.0,
        "cadence_s": 21.3,
        "offset_adu": 0.0,
        "sky_e": 250.0,
        "zero_clip_fraction": 0.065,
        "firmware": "4.70",
        "eq_mode": True,
        "rotation_deg_per_frame": 0.0,
    }
)

#: Keyword arguments of :func:`simulate_sequence` matching the statistics of the
#: real FW 4.27 M 94 subs rather than the benchmark protocol: pedestal ~700 ADU,
#: very low gain in e-/ADU (so ~90 ADU of background noise on green), weak red
#: and blue sites, a sparse field (a few dozen stars at 5 sigma, none saturated)
#: and no hot pixels (the firmware's dark subtraction removed them).
FW427_M94_LIKE: Mapping[str, object] = MappingProxyType(
    {
        "offset_adu": 700.0,
        "gain_e_per_adu": 0.066,
        "read_noise_e": 4.0,
        "sky_e": 19.5,
        "cfa_response": (0.48, 1.0, 0.32),
        "n_stars": 60,
        "flux_min_adu": 6000.0,
        "pareto_index": 1.0,
        "flux_max_adu": 2.5e5,
        "fwhm_px": 3.0,
        "n_hot_pixels": 0,
    }
)
