"""The worker's bridge to the stacking engine: real engine on small simulated frames,
metadata for complete_job, raw-file checks, progress mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from crowdsky.worker import stacking_adapter, thumbnail
from crowdsky.worker.errors import JobAborted, StackingFailed
from tests.worker.fakes import FakeStackResult, fits_bytes


@pytest.fixture(scope="module")
def small_frames(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from crowdsky.simulate import SequenceSpec, simulate_sequence

    out = tmp_path_factory.mktemp("frames")
    simulate_sequence(out, SequenceSpec(n_frames=5, seed=7, shape=(270, 480)))
    return sorted(out.glob("*.fit"))


def test_real_engine_stack_thumbnail_and_metadata(small_frames: list[Path], tmp_path: Path) -> None:
    events: list[tuple[float, str]] = []
    result = stacking_adapter.stack_files(
        small_frames, tmp_path / "stack.fits", progress=lambda f, m: events.append((f, m))
    )
    assert result.n_frames_input == 5
    assert 2 <= result.n_aligned <= 5
    assert (tmp_path / "stack.fits").is_file()
    fractions = [f for f, _ in events]
    assert fractions and fractions == sorted(fractions) and 0 < fractions[-1] <= 1
    png = thumbnail.generate_thumbnail(tmp_path / "stack.fits", tmp_path / "t.png", max_size=128)
    assert png.read_bytes()[:4] == b"\x89PNG"
    meta = stacking_adapter.build_metadata(
        result, ucloud_path="/s.fits", thumbnail_path="/s_thumb.png", file_size_bytes=123
    )
    assert meta["n_frames_aligned"] == result.n_aligned
    assert meta["total_exptime"] == pytest.approx(10.0 * result.n_aligned)
    assert meta["date_obs_start"].endswith("Z") and meta["date_obs_end"] > meta["date_obs_start"]
    assert meta["ra_deg"] == pytest.approx(192.72, abs=0.05)
    left_out = [f for f in result.frames if not f.accepted]
    assert meta["rejected_frames"] == [
        {"filename": f.filename, "reason": f.reason} for f in left_out
    ]


def test_engine_errors_become_stacking_failed(tmp_path: Path) -> None:
    with pytest.raises(StackingFailed, match="stacking failed"):
        stacking_adapter.stack_files([tmp_path / "missing.fit"], tmp_path / "out.fits")


def test_progress_callback_can_abort_the_engine(small_frames: list[Path], tmp_path: Path) -> None:
    def stop(fraction: float, message: str) -> None:
        raise JobAborted("job aborted (shutdown)", reason="shutdown")

    with pytest.raises(JobAborted):
        stacking_adapter.stack_files(small_frames, tmp_path / "x.fits", progress=stop)


def test_metadata_handles_missing_values_and_time_zones(tmp_path: Path) -> None:
    result = FakeStackResult(
        tmp_path / "s.fits",
        3,
        2,
        n_stars_detected=None,
        total_exptime=float("nan"),
        date_obs_start=datetime(2025, 1, 15, 20, 30, tzinfo=timezone(timedelta(hours=1))),
        date_obs_end=None,
        ra_deg=None,
        dec_deg=float("inf"),
    )
    meta = stacking_adapter.build_metadata(
        result, ucloud_path="/s", thumbnail_path=None, file_size_bytes=5
    )
    assert meta["date_obs_start"] == "2025-01-15T19:30:00Z"
    assert meta["date_obs_end"] is None
    assert meta["total_exptime"] == 0.0
    assert meta["dec_deg"] is None and meta["n_stars_detected"] is None
    assert stacking_adapter.iso_utc(datetime(2025, 1, 1, tzinfo=UTC)) == "2025-01-01T00:00:00Z"


def test_verify_raw_file(tmp_path: Path) -> None:
    good = tmp_path / "good.fit"
    good.write_bytes(fits_bytes(1, (64, 64)))
    stacking_adapter.verify_raw_file(good)
    truncated = tmp_path / "cut.fit"
    truncated.write_bytes(good.read_bytes()[:4000])
    with pytest.raises(StackingFailed, match=r"cut\.fit is corrupt: truncated"):
        stacking_adapter.verify_raw_file(truncated)
    garbage = tmp_path / "junk.fit"
    garbage.write_bytes(b"not a fits file at all" * 200)
    with pytest.raises(StackingFailed, match=r"junk\.fit is corrupt: not a FITS file"):
        stacking_adapter.verify_raw_file(garbage)
    broken = tmp_path / "broken.fit"
    broken.write_bytes(b"SIMPLE  =" + b"\xff" * 5000)
    with pytest.raises(StackingFailed, match=r"broken\.fit is corrupt"):
        stacking_adapter.verify_raw_file(broken)
