"""Reference choice and screening on simulated frames with known transforms."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsky.simulate import (
    FrameEvents,
    SequenceSpec,
    SimulatedSequence,
    StarFieldModel,
    relative_transform,
    simulate_sequence,
)
from crowdsky.stacking import screening
from crowdsky.stacking.analysis import FrameState, analyse
from crowdsky.stacking.params import StackParams
from crowdsky.stacking.result import FrameRecord, RejectReason


@pytest.fixture(scope="module")
def sequence(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSequence:
    """Five small frames; the third seen through clouds."""
    spec = SequenceSpec(
        n_frames=5,
        seed=22,
        shape=(640, 360),
        stars=StarFieldModel(n_stars=120),
        events=FrameEvents(cloudy_frames=(2,)),
    )
    return simulate_sequence(tmp_path_factory.mktemp("screening"), spec)


def analysed(sequence: SimulatedSequence) -> list[FrameState]:
    states = [FrameState(FrameRecord(path=p, index=i)) for i, p in enumerate(sequence.paths)]
    for s in states:
        analyse(s, StackParams(), keep_image=False)
    return states


def test_frames_registered_onto_the_reference_and_clouds_rejected(
    sequence: SimulatedSequence,
) -> None:
    frames = analysed(sequence)
    matches = screening.Matches(frames, StackParams())
    ref = screening.choose_reference(frames, matches)
    assert ref is not None and ref.record.is_reference and ref.record.index != 2
    progress: list[tuple[int, int, str]] = []
    screening.register_all(frames, ref, matches, lambda *event: progress.append(event))
    assert [k for k, _, _ in progress] == [1, 2, 3, 4, 5]
    assert ref.record.accepted and ref.record.transform == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    assert frames[2].record.reason_code == RejectReason.CLOUDS
    for s in frames:
        if s.record.accepted and s is not ref:
            truth = relative_transform(
                sequence.truth[s.record.index], sequence.truth[ref.record.index]
            )
            np.testing.assert_allclose(s.record.transform, truth, atol=0.05 * 640)
            assert s.record.transparency == pytest.approx(1.0, abs=0.2)


def test_a_pair_is_matched_once(sequence: SimulatedSequence) -> None:
    frames = analysed(sequence)[:2]
    matches = screening.Matches(frames, StackParams())
    first = matches.between(0, 1)
    assert first is not None
    assert matches.between(0, 1, prior=np.eye(2, 3) * 2) is first
    assert matches.problem(0, 1) is None


def test_no_reference_without_usable_frames(sequence: SimulatedSequence) -> None:
    frames = analysed(sequence)
    for s in frames:
        s.record.reject(RejectReason.UNREADABLE, "unreadable")
    assert screening.usable(frames) == []
    assert screening.choose_reference(frames, screening.Matches(frames, StackParams())) is None
