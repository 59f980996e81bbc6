"""Fixtures for the stacking tests: small simulated sequences with ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdsky.simulate import (
    FrameEvents,
    SequenceSpec,
    SimulatedSequence,
    StarFieldModel,
    simulate_sequence,
)

SMALL_SHAPE = (960, 540)


def robust_background_std(image: np.ndarray, exclude: np.ndarray | None = None) -> float:
    """RMS of the sky after removing a smooth background and masking sources.

    A clipped standard deviation (not a MAD): demosaiced noise is a mixture of
    native and interpolated pixels, whose MAD understates the RMS a mean reduces.
    """
    import cv2
    import sep

    data = np.ascontiguousarray(
        np.nan_to_num(image, nan=float(np.nanmedian(image))), dtype=np.float32
    )
    bkg = sep.Background(data, bw=32, bh=32, mask=exclude)
    residual = data - bkg.back()
    _, segmap = sep.extract(residual, 3.0, err=bkg.globalrms, segmentation_map=True)
    sources = cv2.dilate((segmap > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    keep = ~sources if exclude is None else ~sources & ~exclude
    values = residual[keep]
    for _ in range(5):
        med, std = np.median(values), values.std()
        values = values[np.abs(values - med) < 4.0 * std]
    return float(values.std())


@pytest.fixture(scope="session")
def sim_mixed(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSequence:
    """15 small frames: a satellite trail, a cloudy, a foreign and a hot-pixel-only frame."""
    out = tmp_path_factory.mktemp("sim_mixed")
    events = FrameEvents(
        satellite_frames=(3,), cloudy_frames=(5,), foreign_frames=(8,), hot_pixels_only_frames=(11,)
    )
    stars = StarFieldModel(n_stars=150)
    spec = SequenceSpec(n_frames=15, seed=1, shape=SMALL_SHAPE, stars=stars, events=events)
    return simulate_sequence(out, spec)


@pytest.fixture(scope="session")
def sim_clean(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSequence:
    """15 small normal frames with only bright stars (for noise measurements)."""
    out = tmp_path_factory.mktemp("sim_clean")
    stars = StarFieldModel(n_stars=60, flux_min_adu=30000.0)
    return simulate_sequence(out, SequenceSpec(n_frames=15, seed=2, shape=SMALL_SHAPE, stars=stars))


@pytest.fixture(scope="session")
def stacked_mixed(sim_mixed: SimulatedSequence, tmp_path_factory: pytest.TempPathFactory):
    """The mixed sequence stacked once: (result, output path)."""
    from crowdsky.stacking import stack_files

    out = tmp_path_factory.mktemp("stacked_mixed") / "stack.fits"
    return stack_files(sim_mixed.paths, out), out


def write_paths(directory: Path) -> list[Path]:
    """Sorted FITS paths in a directory."""
    return sorted(directory.glob("*.fit"))
