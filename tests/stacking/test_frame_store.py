"""The frame store: storage chosen from the budget, float16 round trips, scratch file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdsky.stacking import errors
from crowdsky.stacking.frame_store import FrameStore


def test_float32_in_ram_when_it_fits(tmp_path: Path) -> None:
    with FrameStore.create(3, 4, 6, budget_bytes=3 * 4 * 6 * 4, scratch_dir=tmp_path) as store:
        assert store.kind == "ram-float32"
        target = store.target(1)
        assert target is not None and target.shape == (4, 6)
        target[:] = 7.0  # warped straight into the slot
        store.put(1, target)
        frames, first = store.band_rows(1, 3)
        assert first == 1 and frames.shape == (3, 4, 6)  # the whole store, no copy
        assert (store.band(0, 4)[1] == 7.0).all()
        assert store.bytes_written == 0


def test_float16_in_ram_when_float32_does_not_fit(tmp_path: Path) -> None:
    store = FrameStore.create(4, 10, 10, budget_bytes=4 * 10 * 10 * 3, scratch_dir=tmp_path)
    assert store.kind == "ram-float16"
    assert store.target(0) is None
    store.put(0, np.full((10, 10), 70000.0, np.float32))
    assert np.isfinite(store.band(0, 10)[0]).all()  # clipped to float16's max, not inf
    store.close()


def test_scratch_file_round_trip_and_removal(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    cube = rng.normal(500, 10, (6, 50, 30)).astype(np.float32)
    cube[0, :3] = np.nan
    with FrameStore.create(6, 50, 30, budget_bytes=1000, scratch_dir=tmp_path) as store:
        assert store.kind == "disk-float16"
        assert store.path is not None and store.path.parent == tmp_path
        path = store.path
        for i in range(6):
            store.put(i, cube[i])
        assert store.bytes_written == 6 * 50 * 30 * 2
        band = store.band(10, 25)
        np.testing.assert_array_equal(band, cube[:, 10:25].astype(np.float16).astype(np.float32))
        assert np.isnan(store.band(0, 3)[0]).all()  # uncovered stays NaN
    assert not path.exists()


def test_unwritable_scratch_folder_is_an_output_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(errors.OutputError, match="scratch file"):
        FrameStore.create(2, 10, 10, budget_bytes=10, scratch_dir=blocker / "scratch")
