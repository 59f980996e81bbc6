"""Per-frame analysis: what it records of a frame, and which frames it rejects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdsky.simulate import FrameEvents, SequenceSpec, SimulatedSequence, simulate_sequence
from crowdsky.stacking import errors, io
from crowdsky.stacking.analysis import FrameState, analyse, reject_odd_shapes, reload_mosaic
from crowdsky.stacking.params import StackParams
from crowdsky.stacking.result import FrameRecord, RejectReason


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSequence:
    """Three small frames, the last one with hot pixels only (no sky)."""
    spec = SequenceSpec(
        n_frames=3, seed=21, shape=(480, 320), events=FrameEvents(hot_pixels_only_frames=(2,))
    )
    return simulate_sequence(tmp_path_factory.mktemp("analysis"), spec)


def state_of(path: Path, index: int = 0) -> FrameState:
    return FrameState(FrameRecord(path=path, index=index))


def test_a_frame_is_read_repaired_and_its_stars_found(frames: SimulatedSequence) -> None:
    state = state_of(frames.paths[0])
    analyse(state, StackParams(), keep_image=True)
    rec = state.record
    raw = io.read_frame(frames.paths[0])
    assert rec.reason is None and rec.n_stars >= StackParams().min_stars
    assert state.kind == "bayer" and state.pattern == raw.bayer_pattern
    assert state.shape == raw.shape and state.n_channels == 3
    assert rec.date_obs == raw.date_obs and state.date_end == raw.date_end
    assert state.pointing_deg == raw.pointing_deg
    assert state.xy is not None and state.xy.shape == (rec.n_stars, 2)
    assert rec.fwhm_px is not None and rec.fwhm_px > 0
    assert state.image is not None and state.hot_pixels is not None
    # the kept mosaic is the file's with the repairs found in the analysis
    assert np.array_equal(state.image, reload_mosaic(state))


def test_without_the_image_when_not_asked(frames: SimulatedSequence) -> None:
    state = state_of(frames.paths[1])
    analyse(state, StackParams(), keep_image=False)
    assert state.record.reason is None and state.image is None


def test_a_frame_without_stars_is_rejected(frames: SimulatedSequence) -> None:
    state = state_of(frames.paths[2])
    analyse(state, StackParams(), keep_image=True)
    assert state.record.reason_code == RejectReason.TOO_FEW_STARS
    assert state.image is None


def test_an_unreadable_file_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.fit"
    bad.write_bytes(b"not a FITS file")
    state = state_of(bad)
    analyse(state, StackParams(), keep_image=True)
    assert state.record.reason_code == RejectReason.UNREADABLE


def test_frames_unlike_the_majority_are_rejected(tmp_path: Path) -> None:
    states = [state_of(tmp_path / f"{i}.fit", i) for i in range(4)]
    for s in states:
        s.signature, s.shape, s.kind = ((10, 20), False), (10, 20), "bayer"
    states[1].signature, states[1].shape, states[1].image = ((20, 10), False), (20, 10), np.ones(1)
    states[3].record.reject(RejectReason.UNREADABLE, "unreadable")
    reject_odd_shapes(states)
    assert [s.record.reason_code for s in states] == [
        None,
        RejectReason.SHAPE_MISMATCH,
        None,
        RejectReason.UNREADABLE,
    ]
    assert states[1].image is None


def test_a_frame_changed_on_disk_is_an_error(frames: SimulatedSequence, tmp_path: Path) -> None:
    state = state_of(frames.paths[0])
    analyse(state, StackParams(), keep_image=False)
    state.shape = (state.shape[1], state.shape[0])  # as if another file replaced it
    with pytest.raises(errors.StackingError, match="changed on disk"):
        reload_mosaic(state)
