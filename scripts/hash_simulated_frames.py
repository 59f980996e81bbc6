"""Print a SHA-256 per simulated case (file names, bytes and truth) as JSON.

Shows that a change to the simulator keeps its frames bit-identical: run it before
and after and compare (``diff <(python scripts/hash_simulated_frames.py) old.json``).
The cases cover every preset, every special frame kind, both PSFs, the pointing
model, each extended target, every header knob and a small night.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from crowdsky.simulate import (
    FW427_M94_LIKE,
    FW470_ZERO_CLIPPED,
    ExtendedTargetSpec,
    FrameEvents,
    FrameTruth,
    MotionModel,
    Observation,
    PsfModel,
    SensorModel,
    SequenceSpec,
    SkyModel,
    StarFieldModel,
    simulate_night,
    simulate_sequence,
)

SMALL = (240, 160)
CASES = {
    "default_full": SequenceSpec(n_frames=2),
    "fw470": replace(
        FW470_ZERO_CLIPPED, n_frames=2, shape=(480, 270), stars=StarFieldModel(n_stars=40)
    ),
    "fw427": replace(FW427_M94_LIKE, n_frames=1, shape=(480, 270)),
    "specials": SequenceSpec(
        n_frames=7,
        seed=11,
        shape=SMALL,
        stars=StarFieldModel(n_stars=40),
        events=FrameEvents(
            satellite_frames=(1,),
            cloudy_frames=(2,),
            foreign_frames=(3,),
            hot_pixels_only_frames=(4,),
            smeared_frames=(5,),
            cloud_sky_factor=2.5,
            cloud_transparency=0.4,
            satellite_peak_adu=2500.0,
            smear_px=5.0,
        ),
    ),
    "moffat": SequenceSpec(
        n_frames=2,
        seed=3,
        shape=SMALL,
        fwhm_jitter_frac=0.0,
        psf=PsfModel(profile="moffat", fwhm_px=3.5, moffat_beta=2.5),
    ),
    "motion": SequenceSpec(
        n_frames=3,
        seed=4,
        shape=SMALL,
        motion=MotionModel(
            dither_sigma_px=0.0,
            rotation_deg_per_frame=0.3,
            drift_px_per_min=(5.0, 1.0),
            rotation_centre_xy=(10.0, 20.0),
            frame_offsets={1: (25.0, -10.0, 0.0), 2: (0.0, 0.0, 9.4)},
        ),
    ),
    "galaxy": SequenceSpec(
        n_frames=2,
        seed=5,
        shape=SMALL,
        extended=ExtendedTargetSpec("galaxy"),
        sky=SkyModel(gradient=(0.1, -0.2), rgb=(1.0, 0.9, 0.7)),
    ),
    "nebula": SequenceSpec(
        n_frames=2,
        seed=6,
        shape=SMALL,
        extended=ExtendedTargetSpec("nebula", peak_adu=900.0, size_px=30.0),
    ),
    "cluster": SequenceSpec(
        n_frames=2, seed=7, shape=SMALL, extended=ExtendedTargetSpec("cluster")
    ),
    "header": SequenceSpec(
        n_frames=3,
        seed=8,
        shape=SMALL,
        start=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        cadence_s=25.0,
        cadence_jitter_s=0.5,
        n_hot_pixels=7,
        hot_pixel_seed=99,
        observation=Observation(
            object_name="NGC 1",
            ra_deg=1.5,
            dec_deg=-20.0,
            exptime_s=20.0,
            filter_name="LP",
            telescop="S30_x",
            firmware="4.70",
            eq_mode=True,
            ccd_temp_c=10.0,
            site_lon_deg=5.0,
            site_lat_deg=45.0,
            utc_offset_hours=2.0,
            stamp_delay_s=4.0,
        ),
        sensor=SensorModel(
            gain_e_per_adu=1.2,
            read_noise_e=2.0,
            offset_adu=300.0,
            cfa_response=(0.5, 1.0, 0.5),
            zero_clip_fraction=0.01,
        ),
        sky=SkyModel(sky_e=300.0),
        stars=StarFieldModel(flux_min_adu=3000.0, pareto_index=1.1, flux_max_adu=1e6),
        psf=PsfModel(fwhm_px=2.2),
    ),
}


def digest(paths: Iterable[Path], truth: Iterable[FrameTruth]) -> str:
    """SHA-256 over each file's name and bytes, then each frame's truth."""
    sha = hashlib.sha256()
    for path in paths:
        sha.update(Path(path).name.encode())
        sha.update(Path(path).read_bytes())
    for t in truth:
        record = (
            t.index,
            t.date_obs.isoformat(),
            t.sky_to_frame.tobytes(),
            t.kind,
            t.trail,
            t.sky_adu,
            t.noise_adu,
            t.fwhm_px,
            t.transparency,
        )
        sha.update(repr(record).encode())
    return sha.hexdigest()


def main() -> None:
    """Simulate every case in a temporary folder and print the digests."""
    digests = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in CASES.items():
            sequence = simulate_sequence(Path(tmp) / name, spec)
            digests[name] = digest(sequence.paths, sequence.truth)
        night = simulate_night(Path(tmp) / "night", seed=3, shape=SMALL, frames_per_slot=2)
        digests["night"] = digest(
            [frame.path for frame in night.frames],
            [record for seq in night.sequences for record in seq.truth],
        )
    json.dump(digests, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
