"""Single sequences: file layout, timing, determinism, truth and special frames."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
import sep
from astropy.io import fits

from crowdsky.simulate import (
    FULL_SHAPE,
    FW427_M94_LIKE,
    FW470_ZERO_CLIPPED,
    FrameEvents,
    FrameTruth,
    MotionModel,
    PsfModel,
    SequenceSpec,
    SimulatedSequence,
    StarFieldModel,
    apply_affine,
    relative_transform,
    simulate_sequence,
)
from tests.simulate.measure import green_plane, match_truth, measure_stars, read_raw

SEESTAR_KEYWORDS = [
    "SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BZERO", "BSCALE",
    "CREATOR", "PRODUCER", "XORGSUBF", "YORGSUBF", "FOCALLEN", "APERTURE", "PROGRAM",
    "XBINNING", "YBINNING", "CCDXBIN", "CCDYBIN", "XPIXSZ", "YPIXSZ", "IMAGETYP",
    "EXPOSURE", "EXPTIME", "CCD-TEMP", "RA", "DEC", "SITELONG", "SITELAT", "DATE-OBS",
    "FILTER", "INSTRUME", "BAYERPAT", "GAIN", "FOCUSPOS", "TELESCOP", "OBJECT", "TOTALEXP",
]  # fmt: skip
SEESTAR_FILE_BYTES = 4_152_960
NAME_PATTERN = re.compile(r"^Light_(.+)_(\d+\.\d)s_(IRCUT|LP)_(\d{8}-\d{6})\.fit$")


@pytest.fixture(scope="module")
def full_sequence(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSequence:
    """Four full-size frames with visible rotation and dither."""
    motion = MotionModel(rotation_deg_per_frame=0.3, dither_sigma_px=4.0)
    return simulate_sequence(
        tmp_path_factory.mktemp("full"), SequenceSpec(n_frames=4, seed=3, motion=motion)
    )


@pytest.fixture(scope="module")
def special_sequence(tmp_path_factory: pytest.TempPathFactory) -> SimulatedSequence:
    """Full-size frames, one of each special kind, no motion to keep comparisons simple."""
    events = FrameEvents(
        satellite_frames=(1,),
        cloudy_frames=(2,),
        foreign_frames=(3,),
        hot_pixels_only_frames=(4,),
        smeared_frames=(5,),
    )
    return simulate_sequence(
        tmp_path_factory.mktemp("special"), SequenceSpec(n_frames=7, seed=11, events=events)
    )


def test_files_have_the_seestar_layout(full_sequence: SimulatedSequence) -> None:
    for path in full_sequence.paths:
        assert path.stat().st_size == SEESTAR_FILE_BYTES
        data, header = read_raw(path)
        assert data.dtype == np.uint16
        assert data.shape == FULL_SHAPE == (1920, 1080)
        assert list(header.keys()) == SEESTAR_KEYWORDS
        assert header["BITPIX"] == 16
        assert header["BZERO"] == 32768
        assert header["BSCALE"] == 1
        assert (header["NAXIS1"], header["NAXIS2"]) == (1080, 1920)
        assert header["BAYERPAT"] == "GRBG"
        assert header["INSTRUME"] == "Seestar S50"
        assert header["IMAGETYP"] == "Light"
        assert header["FOCALLEN"] == 250
        assert header["GAIN"] == 80
        assert header["XPIXSZ"] == pytest.approx(2.9, abs=1e-6)
        assert header["EXPTIME"] == header["EXPOSURE"] == header["TOTALEXP"] == 10.0
        assert header["OBJECT"] == "M 94"
        assert header["FILTER"] == "IRCUT"
        assert re.fullmatch(r"S50_[0-9a-f]{8}", header["TELESCOP"])
        assert (header["RA"], header["DEC"]) == (192.72, 41.12)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", header["DATE-OBS"])
        assert header["CCD-TEMP"] * 16 == int(header["CCD-TEMP"] * 16)


def test_raw_bytes_are_big_endian_int16_offset_by_bzero(full_sequence: SimulatedSequence) -> None:
    path = full_sequence.paths[0]
    with fits.open(path, do_not_scale_image_data=True) as hdul:
        stored = np.array(hdul[0].data)
    assert stored.dtype.kind == "i" and stored.dtype.itemsize == 2
    data, _ = read_raw(path)
    np.testing.assert_array_equal(stored.astype(np.int32) + 32768, data.astype(np.int32))


def test_file_name_stamp_is_local_time_after_exposure_start(
    full_sequence: SimulatedSequence,
) -> None:
    for truth in full_sequence.truth:
        match = NAME_PATTERN.match(truth.path.name)
        assert match is not None, truth.path.name
        assert match.group(1) == "M 94"
        assert match.group(2) == "10.0"
        local = datetime.strptime(match.group(4), "%Y%m%d-%H%M%S").replace(
            tzinfo=timezone(timedelta(hours=-4))
        )
        delay = (local - truth.date_obs).total_seconds()
        assert 12.0 <= delay <= 13.0  # saved ~13 s after the start, truncated to a second
    first = full_sequence.truth[0]
    assert first.date_obs == datetime(2025, 3, 27, 1, 20, 2, tzinfo=UTC)
    assert first.path.name == "Light_M 94_10.0s_IRCUT_20250326-212015.fit"


def test_date_obs_follows_the_cadence(full_sequence: SimulatedSequence) -> None:
    headers = [read_raw(path)[1] for path in full_sequence.paths]
    starts = [datetime.fromisoformat(h["DATE-OBS"]).replace(tzinfo=UTC) for h in headers]
    assert starts == [truth.date_obs for truth in full_sequence.truth]
    steps = np.diff([moment.timestamp() for moment in starts])
    np.testing.assert_allclose(steps, 11.3, atol=0.15)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, small_shape) -> None:
    spec = SequenceSpec(n_frames=3, seed=5, shape=small_shape, stars=StarFieldModel(n_stars=30))
    first = simulate_sequence(tmp_path / "a", spec)
    again = simulate_sequence(tmp_path / "b", spec)
    other = simulate_sequence(tmp_path / "c", replace(spec, seed=6))
    for a, b, c in zip(first.paths, again.paths, other.paths, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() != c.read_bytes()
    np.testing.assert_array_equal(first.stars, again.stars)


def test_longer_sequence_starts_with_the_same_frames(tmp_path: Path, small_shape) -> None:
    spec = SequenceSpec(n_frames=2, seed=8, shape=small_shape, stars=StarFieldModel(n_stars=30))
    short = simulate_sequence(tmp_path / "short", spec)
    long = simulate_sequence(tmp_path / "long", replace(spec, n_frames=5))
    for a, b in zip(short.paths, long.paths[:2], strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_truth_positions_match_measured_centroids(full_sequence: SimulatedSequence) -> None:
    for index in range(len(full_sequence.paths)):
        raw, _ = read_raw(full_sequence.paths[index])
        measured = measure_stars(raw)
        unsaturated = measured[(measured[:, 2] > 300) & (measured[:, 2] < 30000)]
        got, expected = match_truth(full_sequence, index, unsaturated)
        assert len(got) >= 100, "most stars should be recovered"
        error = np.hypot(*(got - expected).T)
        assert np.median(error) < 0.1
        assert np.percentile(error, 90) < 0.2
        np.testing.assert_allclose(np.median(got - expected, axis=0), 0.0, atol=0.03)


def test_truth_fluxes_match_green_plane_aperture_photometry(
    full_sequence: SimulatedSequence,
) -> None:
    green = green_plane(read_raw(full_sequence.paths[0])[0])
    residual = green - sep.Background(green).back()
    stars, xy = full_sequence.stars_in_frame(0, margin_px=20)
    unsaturated = (stars["flux"] > 2e4) & (stars["flux"] < 3e5)
    flux, _err, _flag = sep.sum_circle(residual, xy[unsaturated, 0], xy[unsaturated, 1], 6.0)
    ratio = flux / (stars["flux"][unsaturated] * stars["g"][unsaturated])
    assert unsaturated.sum() > 20
    assert np.median(ratio) == pytest.approx(1.0, abs=0.02)


def test_relative_transform_maps_frame_a_pixels_to_frame_b(
    full_sequence: SimulatedSequence,
) -> None:
    a, b = full_sequence.truth[0], full_sequence.truth[3]
    matrix = relative_transform(a, b)
    assert matrix.shape == (2, 3) and matrix.dtype == np.float64
    sky = np.column_stack([full_sequence.stars["x"], full_sequence.stars["y"]])
    np.testing.assert_allclose(apply_affine(matrix, a.project(sky)), b.project(sky), atol=1e-9)
    # And on measured stars: a's centroids land on b's centroids.
    got_a, _ = match_truth(full_sequence, 0, measure_stars(read_raw(a.path)[0]))
    measured_b = measure_stars(read_raw(b.path)[0])[:, :2]
    mapped = apply_affine(matrix, got_a)
    nearest = np.min(np.hypot(*(mapped[:, None, :] - measured_b[None, :, :]).transpose(2, 0, 1)), 1)
    assert np.median(nearest) < 0.15


def test_relative_transform_drives_cv2_warp_affine(full_sequence: SimulatedSequence) -> None:
    a, b = full_sequence.truth[0], full_sequence.truth[3]
    # A 3 × 3 median removes hot pixels, which stay put on the sensor and would
    # otherwise dominate the correlation of two noisy frames.
    green_a = cv2.medianBlur(green_plane(read_raw(a.path)[0]), 3)
    green_b = cv2.medianBlur(green_plane(read_raw(b.path)[0]), 3)
    size = (green_b.shape[1], green_b.shape[0])
    inner = (slice(100, -100), slice(100, -100))

    def correlation(matrix: np.ndarray | None) -> float:
        moved = green_a if matrix is None else cv2.warpAffine(green_a, matrix, size)
        return float(np.corrcoef(moved[inner].ravel(), green_b[inner].ravel())[0, 1])

    aligned = correlation(relative_transform(a, b))
    assert aligned > 0.7
    assert correlation(None) < aligned - 0.3
    assert correlation(relative_transform(b, a)) < aligned - 0.3  # the wrong direction


def test_rotation_accumulates_per_frame(full_sequence: SimulatedSequence) -> None:
    for truth in full_sequence.truth:
        angle = np.degrees(np.arctan2(truth.sky_to_frame[1, 0], truth.sky_to_frame[0, 0]))
        assert angle == pytest.approx(0.3 * truth.index, abs=1e-9)
        np.testing.assert_allclose(np.linalg.det(truth.sky_to_frame[:, :2]), 1.0)


def test_default_motion_is_a_few_pixels_over_minutes(tmp_path: Path, small_shape) -> None:
    spec = SequenceSpec(n_frames=20, shape=small_shape, stars=StarFieldModel(n_stars=20))
    sequence = simulate_sequence(tmp_path, spec)
    last = sequence.truth[-1]
    centre = np.array([(small_shape[1] - 1) / 2, (small_shape[0] - 1) / 2])
    shift = np.hypot(*(last.project(centre) - centre))
    assert 1.0 < shift < 15.0  # 3.6 minutes of drift
    angle = np.degrees(np.arctan2(last.sky_to_frame[1, 0], last.sky_to_frame[0, 0]))
    assert 0.01 * 19 <= angle <= 0.05 * 19


def test_hot_pixels_stay_at_fixed_sensor_positions(tmp_path: Path, small_shape) -> None:
    spec = SequenceSpec(
        n_frames=3,
        shape=small_shape,
        n_hot_pixels=25,
        stars=StarFieldModel(n_stars=20),
        motion=MotionModel(dither_sigma_px=5),
    )
    sequence = simulate_sequence(tmp_path, spec)
    cols, rows = sequence.hot_pixels_xy.T
    assert len(cols) == 25
    for path in sequence.paths:
        raw, _ = read_raw(path)
        assert np.all(raw[rows, cols] > 50000)


def test_full_frame_has_about_300_hot_pixels_and_some_saturated_stars(
    full_sequence: SimulatedSequence,
) -> None:
    assert len(full_sequence.hot_pixels_xy) == 300
    raw, _ = read_raw(full_sequence.paths[0])
    cols, rows = full_sequence.hot_pixels_xy.T
    assert np.all((raw[rows, cols] > 54000) & (raw[rows, cols] < 66000))
    hot = np.zeros(raw.shape, bool)
    hot[rows, cols] = True
    assert np.count_nonzero((raw == 65535) & ~hot) > 0, "the brightest stars saturate"


def test_cfa_sites_follow_the_grbg_response(full_sequence: SimulatedSequence) -> None:
    raw, _ = read_raw(full_sequence.paths[0])
    level = {site: np.median(raw[site[0] :: 2, site[1] :: 2]) - 200.0 for site in np.ndindex(2, 2)}
    assert level[(0, 0)] == pytest.approx(level[(1, 1)], rel=0.02)  # both green
    assert level[(0, 1)] / level[(0, 0)] == pytest.approx(0.55, abs=0.03)  # red
    assert level[(1, 0)] / level[(0, 0)] == pytest.approx(0.45, abs=0.03)  # blue


def test_truth_sky_and_noise_match_the_pixels(full_sequence: SimulatedSequence) -> None:
    for truth in full_sequence.truth:
        raw, _ = read_raw(truth.path)
        assert np.median(raw) == pytest.approx(truth.sky_adu, rel=0.1)
        # Background noise from one CFA site, gradient removed by differencing neighbours.
        green = raw[0::2, 0::2].astype(float)
        diff = (green[:, 1:] - green[:, :-1]).ravel() / np.sqrt(2)
        robust_sigma = 1.4826 * np.median(np.abs(diff - np.median(diff)))
        green_sky = np.median(green) - 200.0
        expected = np.sqrt(green_sky / 0.8 + (3.0 / 0.8) ** 2)
        assert robust_sigma == pytest.approx(expected, rel=0.05)
        assert 0.6 * expected < truth.noise_adu < 1.1 * expected


def test_satellite_frame_has_a_bright_line_along_its_trail(
    special_sequence: SimulatedSequence,
) -> None:
    truth = special_sequence.truth[1]
    assert truth.kind == "satellite"
    assert truth.trail is not None
    x0, y0, x1, y1 = truth.trail
    assert np.hypot(x1 - x0, y1 - y0) > 1000  # crosses the frame
    t = np.linspace(0.05, 0.95, 200)
    cols = np.rint(x0 + t * (x1 - x0)).astype(int)
    rows = np.rint(y0 + t * (y1 - y0)).astype(int)
    trail_frame = green_plane(read_raw(truth.path)[0])
    normal_frame = green_plane(read_raw(special_sequence.paths[0])[0])
    excess = np.median(trail_frame[rows, cols]) - np.median(trail_frame)
    assert excess > 1500
    assert np.median(normal_frame[rows, cols]) - np.median(normal_frame) < 100
    assert all(other.trail is None for other in special_sequence.truth if other.index != 1)


def test_cloudy_frame_has_brighter_sky_and_fainter_stars(
    special_sequence: SimulatedSequence,
) -> None:
    clear, cloudy = special_sequence.truth[0], special_sequence.truth[2]
    assert cloudy.kind == "cloudy" and cloudy.transparency == pytest.approx(0.3)
    clear_raw, cloudy_raw = read_raw(clear.path)[0], read_raw(cloudy.path)[0]
    ratio = (np.median(cloudy_raw) - 200.0) / (np.median(clear_raw) - 200.0)
    assert ratio == pytest.approx(3.0, rel=0.1)
    assert cloudy.sky_adu > 2.5 * clear.sky_adu - 400
    assert len(measure_stars(cloudy_raw)) < 0.7 * len(measure_stars(clear_raw))


def test_foreign_frame_shows_another_field(special_sequence: SimulatedSequence) -> None:
    def matched_count(index: int) -> int:
        measured = measure_stars(read_raw(special_sequence.paths[index])[0], thresh=20)
        got, _ = match_truth(special_sequence, index, measured, radius_px=1.0)
        return len(got)

    assert special_sequence.truth[3].kind == "foreign"
    normal = matched_count(0)
    assert normal > 80
    assert matched_count(3) < 0.05 * normal  # only chance coincidences
    assert len(measure_stars(read_raw(special_sequence.paths[3])[0])) > 200  # still stars


def test_hot_pixels_only_frame_has_sky_noise_and_hot_pixels_but_no_stars(
    special_sequence: SimulatedSequence,
) -> None:
    truth = special_sequence.truth[4]
    assert truth.kind == "hot_pixels_only"
    raw, _ = read_raw(truth.path)
    cols, rows = special_sequence.hot_pixels_xy.T
    assert np.all(raw[rows, cols] > 50000)
    cleaned = raw.copy()
    cleaned[rows, cols] = np.median(raw)
    assert len(measure_stars(cleaned)) < 5
    assert np.median(raw) == pytest.approx(truth.sky_adu, rel=0.1)
    hot = np.zeros(raw.shape, bool)
    hot[rows, cols] = True
    assert raw[~hot].max() < np.median(raw) + 10 * truth.noise_adu * 2


def test_smeared_frame_has_elongated_stars(special_sequence: SimulatedSequence) -> None:
    def median_elongation(index: int) -> float:
        green = green_plane(read_raw(special_sequence.paths[index])[0])
        background = sep.Background(green)
        objects = sep.extract(green - background.back(), 20, err=background.globalrms)
        good = (objects["peak"] > 500) & (objects["peak"] < 20000)
        return float(np.median(objects["a"][good] / objects["b"][good]))

    assert special_sequence.truth[5].kind == "smeared"
    assert median_elongation(0) < 1.3
    assert median_elongation(5) > 1.8


def test_zero_clipped_fw470_variant(tmp_path: Path) -> None:
    spec = replace(
        FW470_ZERO_CLIPPED, n_frames=2, shape=(480, 270), stars=StarFieldModel(n_stars=40)
    )
    sequence = simulate_sequence(tmp_path, spec)
    raw, header = read_raw(sequence.paths[0])
    assert np.mean(raw == 0) == pytest.approx(0.065, abs=0.015)
    assert 60 < np.median(raw) < 200  # FW 4.70 medians are ~85–123 ADU
    assert sequence.truth[0].sky_adu == pytest.approx(np.mean(raw), rel=0.15)
    assert header["PROGRAM"] == "4.70"
    assert header["EQMODE"] == 1
    assert header["EXPTIME"] == 20.0
    keys = list(header.keys())
    assert keys.index("EQMODE") == keys.index("APERTURE") + 1
    assert "_20.0s_" in sequence.paths[0].name


def test_fw427_preset_matches_the_real_m94_background(tmp_path: Path) -> None:
    # Per-site median and robust sigma of the real FW 4.27 M 94 subs (reference §1.2).
    real = {(0, 0): (996, 90.4), (0, 1): (842, 77.1), (1, 0): (794, 71.2), (1, 1): (993, 90.4)}
    sequence = simulate_sequence(tmp_path, replace(FW427_M94_LIKE, n_frames=1, shape=(480, 270)))
    raw, _ = read_raw(sequence.paths[0])
    for (row, col), (median, sigma) in real.items():
        site = raw[row::2, col::2].astype(float)
        level = np.median(site)
        assert level == pytest.approx(median, rel=0.02)
        assert 1.4826 * np.median(np.abs(site - level)) == pytest.approx(sigma, rel=0.08)
    assert sequence.hot_pixels_xy.size == 0
    assert raw.max() < 65535


def test_moffat_psf_and_fwhm_option(tmp_path: Path) -> None:
    spec = SequenceSpec(
        n_frames=1,
        shape=(480, 320),
        fwhm_jitter_frac=0,
        stars=StarFieldModel(n_stars=60),
        psf=PsfModel(profile="moffat", fwhm_px=3.5),
    )
    sequence = simulate_sequence(tmp_path, spec)
    assert sequence.truth[0].fwhm_px == pytest.approx(3.5)
    raw, _ = read_raw(sequence.paths[0])
    measured = measure_stars(raw, fwhm_px=3.5)
    got, expected = match_truth(sequence, 0, measured[measured[:, 2] < 30000])
    assert len(got) > 20
    assert np.median(np.hypot(*(got - expected).T)) < 0.15


def test_small_shape_option(tmp_path: Path, small_shape) -> None:
    spec = SequenceSpec(n_frames=2, shape=small_shape, stars=StarFieldModel(n_stars=20))
    sequence = simulate_sequence(tmp_path, spec)
    raw, header = read_raw(sequence.paths[0])
    assert raw.shape == small_shape
    assert (header["NAXIS2"], header["NAXIS1"]) == small_shape
    assert isinstance(sequence.truth[0], FrameTruth)


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ({"events": lambda: FrameEvents(satellite_frames=(1,), cloudy_frames=(1,))}, "both"),
        ({"events": lambda: FrameEvents(foreign_frames=(9,))}, "outside"),
        ({"start": lambda: datetime(2025, 3, 27, 1, 20)}, "timezone"),
        ({"cadence_s": lambda: 0.2}, "same file name"),
        ({"psf": lambda: PsfModel(profile="airy")}, "profile"),
        ({"n_frames": lambda: 0}, "at least 1"),
        ({"shape": lambda: (6, 6)}, "at least 8 x 8"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, small_shape, parts, message) -> None:
    spec = SequenceSpec(n_frames=3, shape=small_shape, stars=StarFieldModel(n_stars=10))
    with pytest.raises(ValueError, match=message):
        simulate_sequence(tmp_path, replace(spec, **{key: build() for key, build in parts.items()}))


@pytest.mark.slow
def test_ninety_frame_benchmark_sequence(tmp_path: Path) -> None:
    spec = SequenceSpec(
        n_frames=90,
        motion=MotionModel(rotation_deg_per_frame=0.04, dither_sigma_px=6.0),
        events=FrameEvents(satellite_frames=(7,)),
    )
    sequence = simulate_sequence(tmp_path, spec)
    assert len(sequence.paths) == len(set(sequence.paths)) == 90
    assert all(path.stat().st_size == SEESTAR_FILE_BYTES for path in sequence.paths)
    span = sequence.truth[-1].date_obs - sequence.truth[0].date_obs
    assert span.total_seconds() == pytest.approx(89 * 11.3, abs=0.5)


def test_frame_offsets_add_a_jump_and_a_large_rotation(tmp_path: Path) -> None:
    motion = MotionModel(
        dither_sigma_px=0.0,
        rotation_deg_per_frame=0.0,
        drift_px_per_min=(0.0, 0.0),
        frame_offsets={1: (25.0, -10.0, 0.0), 2: (0.0, 0.0, 69.4)},
    )
    spec = SequenceSpec(
        n_frames=3, shape=(480, 320), stars=StarFieldModel(n_stars=80), motion=motion
    )
    sequence = simulate_sequence(tmp_path, spec)
    first, jumped, rotated = sequence.truth
    np.testing.assert_allclose(relative_transform(first, jumped)[:, 2], [25.0, -10.0])
    angle = np.degrees(np.arctan2(rotated.sky_to_frame[1, 0], rotated.sky_to_frame[0, 0]))
    assert angle == pytest.approx(69.4)
    # The catalogue covers the rotated frame's corners too.
    measured = measure_stars(read_raw(rotated.path)[0])
    got, expected = match_truth(sequence, 2, measured[measured[:, 2] < 30000])
    assert len(got) > 0.6 * len(measured[measured[:, 2] < 30000]) - 10
    assert np.median(np.hypot(*(got - expected).T)) < 0.1
