"""Simulated nights: targets, slots, special frames and the shared sensor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from crowdsky.simulate import FULL_SHAPE, SimulatedNight, simulate_night, slot_start
from tests.simulate.measure import read_raw


@pytest.fixture(scope="module")
def small_night(tmp_path_factory: pytest.TempPathFactory) -> SimulatedNight:
    """The demo-sized night on full-size frames."""
    return simulate_night(tmp_path_factory.mktemp("night"), seed=2)


def test_small_night_is_two_targets_by_two_slots_by_five_frames(
    small_night: SimulatedNight,
) -> None:
    assert len(small_night.frames) == 20
    assert [s.object_name for s in small_night.sequences] == ["M 94", "M 13"]
    slots = small_night.slots()
    assert len(slots) == 4
    assert all(len(frames) == 5 for frames in slots.values())
    for (_target, start), frames in slots.items():
        assert all(start <= f.date_obs < start + timedelta(minutes=15) for f in frames)
    for target in ("M 94", "M 13"):
        starts = sorted({f.slot_start for f in small_night.frames_for(target)})
        assert len(starts) == 2 and starts[1] - starts[0] == timedelta(minutes=15)


def test_night_files_are_in_target_folders_with_matching_headers(
    small_night: SimulatedNight,
) -> None:
    dates = [frame.date_obs for frame in small_night.frames]
    assert dates == sorted(dates)
    assert len({frame.path.name for frame in small_night.frames}) == 20
    for frame in small_night.frames:
        assert frame.path.parent == small_night.root / f"{frame.object_name}_sub"
        raw, header = read_raw(frame.path)
        assert raw.shape == FULL_SHAPE
        assert header["OBJECT"] == frame.object_name
        stamp = datetime.fromisoformat(header["DATE-OBS"]).replace(tzinfo=UTC)
        assert stamp == frame.date_obs
        truth = small_night.sequences[frame.sequence_index].truth[frame.frame_index]
        assert truth.path == frame.path and truth.kind == frame.kind


def test_targets_have_real_coordinates(small_night: SimulatedNight) -> None:
    m94, m13 = small_night.sequences
    assert (m94.ra_deg, m94.dec_deg) == pytest.approx((192.72, 41.12), abs=0.01)
    assert (m13.ra_deg, m13.dec_deg) == pytest.approx((250.42, 36.46), abs=0.01)


def test_one_satellite_and_one_cloudy_frame(small_night: SimulatedNight) -> None:
    kinds = [frame.kind for frame in small_night.frames]
    assert kinds.count("satellite") == 1
    assert kinds.count("cloudy") == 1
    assert kinds.count("normal") == 18
    satellite = next(f for f in small_night.frames if f.kind == "satellite")
    cloudy = next(f for f in small_night.frames if f.kind == "cloudy")
    assert satellite.object_name != cloudy.object_name


def test_one_telescope_one_set_of_hot_pixels(small_night: SimulatedNight) -> None:
    first, second = small_night.sequences
    np.testing.assert_array_equal(first.hot_pixels_xy, second.hot_pixels_xy)
    assert not np.array_equal(first.stars["x"][:10], second.stars["x"][:10])  # different skies


def test_night_is_deterministic_and_takes_a_shape(tmp_path: Path) -> None:
    a = simulate_night(tmp_path / "a", seed=4, shape=(128, 96))
    b = simulate_night(tmp_path / "b", seed=4, shape=(128, 96))
    assert read_raw(a.paths[0])[0].shape == (128, 96)
    for path_a, path_b in zip(a.paths, b.paths, strict=True):
        assert path_a.name == path_b.name
        assert path_a.read_bytes() == path_b.read_bytes()


def test_full_scale_night_has_three_targets_of_thirty_frames(tmp_path: Path) -> None:
    night = simulate_night(tmp_path, scale="full", shape=(96, 64))
    assert [s.object_name for s in night.sequences] == ["M 94", "M 13", "NGC 7023"]
    assert len(night.frames) == 90
    assert sorted(len(frames) for frames in night.slots().values()) == [15] * 6


def test_frames_per_slot_override(tmp_path: Path) -> None:
    night = simulate_night(tmp_path, frames_per_slot=3, shape=(64, 64))
    assert len(night.frames) == 12
    assert all(len(frames) == 3 for frames in night.slots().values())


def test_slot_start_floors_to_quarter_hours() -> None:
    moment = datetime(2025, 3, 27, 1, 29, 59, 999999, tzinfo=UTC)
    assert slot_start(moment) == datetime(2025, 3, 27, 1, 15, tzinfo=UTC)
    assert slot_start(moment + timedelta(microseconds=1)) == datetime(
        2025, 3, 27, 1, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": "huge"}, "scale"),
        ({"first_boundary": datetime(2025, 3, 27, 1, 31, tzinfo=UTC)}, "slot start"),
        ({"frames_per_slot": 200}, "frames_per_slot"),
        ({"target_spacing_min": 20}, "multiple"),
    ],
)
def test_bad_night_arguments_are_refused(tmp_path: Path, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        simulate_night(tmp_path, shape=(64, 64), **kwargs)


@pytest.mark.slow
def test_full_scale_night_on_full_frames(tmp_path: Path) -> None:
    night = simulate_night(tmp_path, scale="full")
    assert len(night.paths) == 90
    assert all(path.stat().st_size == 4_152_960 for path in night.paths)
