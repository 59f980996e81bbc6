"""Warping used frames into the frame store, in RAM float32 and through float16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdsky.simulate import SequenceSpec, SimulatedSequence, simulate_sequence
from crowdsky.stacking import debayer, half, io, quality, warp
from crowdsky.stacking.alignment import Warper
from crowdsky.stacking.analysis import FrameState, analyse
from crowdsky.stacking.frame_store import FrameStore
from crowdsky.stacking.params import StackParams
from crowdsky.stacking.result import FrameRecord

SHAPE = (240, 160)


@pytest.fixture(scope="module")
def sequence(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSequence:
    return simulate_sequence(
        tmp_path_factory.mktemp("alignment"), SequenceSpec(n_frames=2, seed=23, shape=SHAPE)
    )


def reference(sequence: SimulatedSequence, keep_image: bool) -> FrameState:
    state = FrameState(FrameRecord(path=sequence.paths[0], index=0))
    analyse(state, StackParams(), keep_image=keep_image)
    return state


def test_reference_through_the_cfa_warp_into_its_slot(sequence: SimulatedSequence) -> None:
    ref = reference(sequence, keep_image=True)
    mosaic = ref.image.copy()  # type: ignore[union-attr]
    params = StackParams()
    rows, cols = SHAPE
    store = FrameStore(1, rows, cols * 3, "ram-float32", np.empty((1, rows, cols * 3), np.float32))
    warper = Warper(ref, store, params)
    back, noise = warper.warp(0, ref)
    warper.release()
    expected = warp.warp_bayer(mosaic, "GRBG", np.eye(2, 3), SHAPE, params.interpolation).reshape(
        rows, cols * 3
    )
    np.testing.assert_array_equal(store.band(0, rows)[0], expected)
    exp_back, exp_noise = quality.channel_statistics(expected.reshape(rows, cols, 3))
    np.testing.assert_array_equal(back, exp_back)
    np.testing.assert_array_equal(noise, exp_noise)
    assert ref.image is None  # dropped once warped


def test_bilinear_reference_is_copied_through_a_float16_store(
    sequence: SimulatedSequence, tmp_path: Path
) -> None:
    ref = reference(sequence, keep_image=False)  # read again for the warp
    params = StackParams(demosaic="bilinear")
    rows, cols = SHAPE
    with FrameStore.create(
        1, rows, cols * 3, budget_bytes=rows * cols * 6, scratch_dir=tmp_path
    ) as store:
        assert store.kind == "ram-float16"
        warper = Warper(ref, store, params)
        warper.warp(0, ref)
        warper.release()
        mosaic = io.read_frame(ref.record.path).data
        mosaic.reshape(-1)[ref.hot_pixels[0]] = ref.hot_pixels[1]  # type: ignore[index]
        rgb = debayer.debayer(mosaic, "GRBG").astype(np.float32)
        clipped = np.minimum(rgb, half.F16_MAX)  # the float16 store clips saturated pixels
        expected = clipped.reshape(rows, cols * 3).astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(store.band(0, rows)[0], expected)
