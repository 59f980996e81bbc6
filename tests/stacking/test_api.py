"""``stack_files`` against simulator ground truth."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from crowdsky.simulate import (
    FrameEvents,
    SequenceSpec,
    SimulatedSequence,
    relative_transform,
    simulate_sequence,
)
from crowdsky.stacking import (
    InvalidInput,
    NoUsableFrames,
    RejectReason,
    StackParams,
    StackProgress,
    stack_files,
)
from tests.stacking.conftest import SMALL_SHAPE, robust_background_std


def read_rgb(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with fits.open(path) as hdul:
        rgb = np.stack([hdul[n].data for n in ("RED", "GREEN", "BLUE")], axis=-1)
        return rgb, np.asarray(hdul["FOOTPRINT"].data)


def transform_rms(matrix: np.ndarray, truth: np.ndarray, shape: tuple[int, int]) -> float:
    ys, xs = np.mgrid[0 : shape[0] : 20, 0 : shape[1] : 20]
    pts = np.column_stack([xs.ravel(), ys.ravel()]).astype(float)
    err = (pts @ matrix[:, :2].T + matrix[:, 2]) - (pts @ truth[:, :2].T + truth[:, 2])
    return float(np.sqrt((err**2).sum(axis=1).mean()))


def test_registration_error_below_a_tenth_of_a_pixel(
    sim_mixed: SimulatedSequence, stacked_mixed
) -> None:
    result, _ = stacked_mixed
    ref = result.reference_index
    assert ref is not None and sim_mixed.truth[ref].kind == "normal"
    for frame in result.frames:
        if not frame.accepted:
            continue
        truth = relative_transform(sim_mixed.truth[frame.index], sim_mixed.truth[ref])
        assert transform_rms(np.array(frame.transform), truth, SMALL_SHAPE) <= 0.1, frame


def test_bad_frames_rejected_with_reasons(sim_mixed: SimulatedSequence, stacked_mixed) -> None:
    result, _ = stacked_mixed
    kinds = {f.index: sim_mixed.truth[f.index].kind for f in result.frames}
    rejected = {f.index: f for f in result.frames if not f.accepted}
    assert {kinds[i] for i in rejected} == {"cloudy", "foreign", "hot_pixels_only"}
    assert rejected[5].reason_code is RejectReason.CLOUDS
    assert rejected[8].reason_code in (RejectReason.NO_MATCH, RejectReason.TOO_FEW_MATCHES)
    assert rejected[11].reason_code is RejectReason.TOO_FEW_STARS
    for frame in rejected.values():
        assert frame.reason and frame.transform is None and frame.weight == 0.0
    assert result.n_aligned == 12 == sum(f.accepted for f in result.frames)
    assert result.n_frames_input == 15
    # exposure and times come from the stacked frames only
    used = [sim_mixed.truth[f.index] for f in result.frames if f.accepted]
    assert result.total_exptime == pytest.approx(10.0 * 12)
    assert result.date_obs_start == min(t.date_obs for t in used)
    assert (result.date_obs_end - max(t.date_obs for t in used)).total_seconds() == pytest.approx(
        10.0
    )


def test_satellite_trail_removed_at_n5(tmp_path: Path) -> None:
    spec = SequenceSpec(n_frames=5, seed=4, shape=SMALL_SHAPE)
    trail = FrameEvents(satellite_frames=(2,))
    with_trail = simulate_sequence(tmp_path / "a", replace(spec, events=trail))
    without = simulate_sequence(tmp_path / "b", spec)
    ra = stack_files(with_trail.paths, tmp_path / "a.fits")
    rb = stack_files(without.paths, tmp_path / "b.fits")
    assert ra.n_aligned == rb.n_aligned == 5 and ra.reference_index == rb.reference_index
    lum_a = read_rgb(tmp_path / "a.fits")[0].sum(axis=2)
    lum_b = read_rgb(tmp_path / "b.fits")[0].sum(axis=2)
    x0, y0, x1, y1 = with_trail.truth[2].trail
    m = relative_transform(with_trail.truth[2], with_trail.truth[ra.reference_index])
    t = np.linspace(0.0, 1.0, 4000)
    pts = np.column_stack([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t]) @ m[:, :2].T + m[:, 2]
    q = np.unique(np.round(pts).astype(int), axis=0)
    inside = (
        (q[:, 0] >= 0) & (q[:, 0] < SMALL_SHAPE[1]) & (q[:, 1] >= 0) & (q[:, 1] < SMALL_SHAPE[0])
    )
    q = q[inside]
    assert len(q) > 500
    residual = (lum_a - lum_b)[q[:, 1], q[:, 0]]
    sigma = robust_background_std(lum_b)
    assert np.nanmax(residual) < 3.0 * sigma
    # and without rejection the trail would be there
    rn = stack_files(with_trail.paths, tmp_path / "n.fits", params=StackParams(rejection="none"))
    assert rn.n_aligned == 5
    lum_n = read_rgb(tmp_path / "n.fits")[0].sum(axis=2)
    assert np.nanmax((lum_n - lum_b)[q[:, 1], q[:, 0]]) > 10.0 * sigma


@pytest.mark.parametrize(
    "params",
    [
        StackParams(),
        StackParams(smoothing_px=0.0),
        StackParams(interpolation="cubic", smoothing_px=0.5),
        StackParams(demosaic="bilinear", interpolation="cubic-linear", smoothing_px=0.0),
    ],
    ids=["default", "no-smoothing", "cubic", "bilinear-demosaic"],
)
def test_background_noise_close_to_single_frame_over_sqrt_n(
    sim_clean: SimulatedSequence, tmp_path: Path, params: StackParams
) -> None:
    """σ_stack ≈ σ₁/√N, σ₁ measured on single frames resampled exactly as the engine
    resampled them (interpolation and the final low-pass correlate noise, which is
    not the combiner's doing)."""
    from crowdsky.stacking import debayer, io, warp

    result = stack_files(sim_clean.paths, tmp_path / "s.fits", params=params)
    n = result.n_aligned
    assert n == 15
    rgb, footprint = read_rgb(tmp_path / "s.fits")
    partial = footprint < n
    frames = [f for f in result.frames if not f.is_reference][:5]
    warped = []
    for f in frames:
        mosaic = io.read_frame(f.path).data
        matrix = np.array(f.transform)
        if params.demosaic == "cfa":
            single = warp.warp_bayer(mosaic, "GRBG", matrix, SMALL_SHAPE, params.interpolation)
        else:
            rgb_f = debayer.debayer(mosaic, "GRBG")
            single = warp.warp_image(rgb_f, matrix, SMALL_SHAPE, params.interpolation)
        warped.append(warp.low_pass(single, params.smoothing_px))
    for c in range(3):
        singles = [
            robust_background_std(w[..., c], exclude=~np.isfinite(w[..., c])) for w in warped
        ]
        expected = float(np.median(singles)) / np.sqrt(n)
        measured = robust_background_std(rgb[..., c], exclude=partial)
        assert measured == pytest.approx(expected, rel=0.10), (c, measured, expected)


def test_coincident_outliers_in_two_frames_rejected_at_n10(tmp_path: Path) -> None:
    seq = simulate_sequence(tmp_path / "raw", SequenceSpec(n_frames=10, seed=5, shape=SMALL_SHAPE))
    sky_xy = np.array([[270.0, 480.0]])
    for i in (3, 6):  # the same sky spot, bright in two frames
        path = seq.paths[i]
        with fits.open(path) as hdul:
            data = hdul[0].data.astype(np.int64)
            header = hdul[0].header.copy()
        x, y = seq.truth[i].project(sky_xy)[0]
        yy, xx = np.mgrid[0 : data.shape[0], 0 : data.shape[1]]
        data += (20000 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 3.0**2))).astype(np.int64)
        fits.PrimaryHDU(np.clip(data, 0, 65535).astype(np.uint16), header).writeto(
            path, overwrite=True
        )
    result = stack_files(seq.paths, tmp_path / "s.fits")
    assert result.n_aligned == 10
    ref = seq.truth[result.reference_index]
    x, y = ref.project(sky_xy)[0]
    lum = read_rgb(tmp_path / "s.fits")[0].sum(axis=2)
    clean = simulate_sequence(
        tmp_path / "clean", SequenceSpec(n_frames=10, seed=5, shape=SMALL_SHAPE)
    )
    stack_files(clean.paths, tmp_path / "c.fits")
    lum_clean = read_rgb(tmp_path / "c.fits")[0].sum(axis=2)
    box = (slice(int(y) - 6, int(y) + 7), slice(int(x) - 6, int(x) + 7))
    residual = (lum - lum_clean)[box]
    assert np.nanmax(residual) < 3.0 * robust_background_std(lum_clean)


def test_output_is_deterministic(sim_clean: SimulatedSequence, tmp_path: Path) -> None:
    paths = sim_clean.paths[:6]
    stack_files(paths, tmp_path / "a.fits")
    stack_files(list(reversed(paths)), tmp_path / "b.fits", params=StackParams(n_threads=1))
    a, fa = read_rgb(tmp_path / "a.fits")
    b, fb = read_rgb(tmp_path / "b.fits")
    np.testing.assert_array_equal(fa, fb)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-3)
    stack_files(paths, tmp_path / "c.fits")
    assert (tmp_path / "a.fits").read_bytes() == (tmp_path / "c.fits").read_bytes()


def test_scratch_file_path_gives_the_same_stack(
    sim_clean: SimulatedSequence, tmp_path: Path
) -> None:
    paths = sim_clean.paths[:8]
    ram = stack_files(paths, tmp_path / "ram.fits")
    disk = stack_files(
        paths,
        tmp_path / "disk.fits",
        params=StackParams(memory_limit_bytes=64 * 1024 * 1024, scratch_dir=tmp_path / "scratch"),
    )
    assert ram.storage == "ram-float32"
    assert disk.storage == "disk-float16"
    assert disk.scratch_bytes == 8 * SMALL_SHAPE[0] * SMALL_SHAPE[1] * 3 * 2
    assert list((tmp_path / "scratch").iterdir()) == []
    a, _ = read_rgb(tmp_path / "ram.fits")
    b, _ = read_rgb(tmp_path / "disk.fits")
    finite = np.isfinite(a) & np.isfinite(b)
    assert float(np.median(np.abs(a - b)[finite])) < 0.2


def test_progress_events_come_in_stage_order(sim_clean: SimulatedSequence, tmp_path: Path) -> None:
    events: list[StackProgress] = []
    stack_files(sim_clean.paths[:4], tmp_path / "s.fits", progress=events.append)
    stages = list(dict.fromkeys(e.stage for e in events))
    assert stages == ["analyse", "register", "warp", "combine", "catalogue", "write"]
    assert all(0 <= e.done <= e.total for e in events)


def test_no_usable_frames_lists_reasons(tmp_path: Path) -> None:
    events = FrameEvents(hot_pixels_only_frames=(0, 1, 2))
    seq = simulate_sequence(
        tmp_path, SequenceSpec(n_frames=3, seed=6, shape=(256, 256), events=events)
    )
    with pytest.raises(NoUsableFrames) as info:
        stack_files(seq.paths, tmp_path / "s.fits")
    assert len(info.value.reasons) == 3
    assert "stars detected" in str(info.value)
    assert not (tmp_path / "s.fits").exists()


def test_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        stack_files([], tmp_path / "s.fits")
    with pytest.raises(InvalidInput, match=r"nope\.fit"):
        stack_files([tmp_path / "nope.fit"], tmp_path / "s.fits")
    with pytest.raises(InvalidInput):
        StackParams(method="average")


def test_unreadable_frame_is_rejected_not_fatal(
    sim_clean: SimulatedSequence, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.fit"
    junk.write_bytes(b"this is not a FITS file" * 200)
    result = stack_files([*sim_clean.paths[:4], junk], tmp_path / "s.fits")
    assert result.n_aligned == 4
    assert result.frames[4].reason_code is RejectReason.UNREADABLE
    assert "junk.fit" in (result.frames[4].reason or "")


def test_prepare_loads_once_and_retries_after_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdsky.stacking import api

    monkeypatch.setattr(api, "_warming", None)
    calls: list[str] = []

    def failing() -> None:
        calls.append("failed")
        raise RuntimeError("no kernels")

    monkeypatch.setattr(api, "_warm_up_kernels", failing)
    first = api.prepare()
    with pytest.raises(RuntimeError, match="no kernels"):
        first.result(timeout=60)
    monkeypatch.setattr(api, "_warm_up_kernels", lambda: calls.append("loaded"))
    second = api.prepare()
    assert second is not first
    second.result(timeout=60)
    assert api.prepare() is second  # once loaded, never again
    assert calls == ["failed", "loaded"]


def test_coverage_and_nan_pixels_agree_exactly() -> None:
    """A pixel with any colour non-finite, or no coverage, is NaN in every colour and
    0 in FOOTPRINT; finite pixels whose colours would overflow a sum are kept."""
    from crowdsky.stacking import api

    rng = np.random.default_rng(9)
    image = rng.normal(1000, 10, (40, 30, 3)).astype(np.float32)
    coverage = np.full((40, 30), 5, np.uint16)
    image[1, 2, 1] = np.nan
    image[3, 4, 2] = np.inf
    image[5, 6, :2] = (np.inf, -np.inf)
    image[7, 8, :2] = 3e38  # finite, but the colours' sum is not
    coverage[9, 10] = 0
    expected_missing = np.zeros((40, 30), bool)
    expected_missing[[1, 3, 5, 9], [2, 4, 6, 10]] = True
    api._agree_on_coverage(image, coverage)
    assert np.array_equal(~np.isfinite(image).all(axis=2), expected_missing)
    assert np.isnan(image[expected_missing]).all()
    assert np.array_equal(coverage == 0, expected_missing)
    assert (image[7, 8, :2] == np.float32(3e38)).all()
