"""Chunking and chunk keys (``ingest/chunking.py``), with ground truth."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from astropy import units as u
from astropy_healpix import HEALPix

from crowdsky.healpix import healpix_ring_pixels
from crowdsky.ingest.chunking import (
    FrameInfo,
    KeyFormat,
    chunk_key,
    group_frames,
    healpix_ring_pixel,
    mean_pointing,
    plan_chunks,
    round_half_up,
    slot_prefix,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# original-system.md §5.1 and §5.2 worked examples
WORKED = [
    (utc(2025, 1, 15, 19, 32, 10), 83.6, 22.0, "20250115.78_83.6_+22.0", "20250115.78_HP061302"),
    (utc(2025, 10, 24, 18, 47, 3), 10.3, 85.1, "20251024.75_10.3_+85.1", "20251024.75_HP000313"),
    (
        datetime(2025, 3, 27, 1, 20, 15, 500000, tzinfo=UTC),
        192.72,
        41.12,
        "20250327.05_192.7_+41.1",
        "20250327.05_HP033298",
    ),
    (utc(2025, 2, 1, 0, 14, 59), 83.82, -5.39, "20250201.00_83.8_-5.4", "20250201.00_HP107383"),
]


@pytest.mark.parametrize(("when", "ra", "dec", "classic", "healpix"), WORKED)
def test_worked_examples(when: datetime, ra: float, dec: float, classic: str, healpix: str) -> None:
    assert chunk_key(when, ra, dec, "classic") == classic
    assert chunk_key(when, ra, dec, "healpix") == healpix


def test_classic_edge_cases() -> None:
    assert (
        chunk_key(utc(2025, 2, 1, 23, 59, 59), 359.97, -0.03, "classic") == "20250201.95_360.0_-0.0"
    )
    assert chunk_key(utc(2025, 2, 1, 12), 10.0, -0.0, "classic") == "20250201.48_10.0_+0.0"
    assert chunk_key(utc(2025, 2, 1, 12), 10.0, 0.04, "classic") == "20250201.48_10.0_+0.0"


def test_unknown_position_has_its_own_marker() -> None:
    when = utc(2025, 2, 1, 12)
    assert chunk_key(when, None, None) == "20250201.48_NOPOS"
    assert chunk_key(when, None, None, "healpix") == "20250201.48_NOPOS"
    assert chunk_key(when, 0.0, 90.0, "healpix") == "20250201.48_HP000000"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10.25, "10.3"),
        (10.35, "10.4"),
        (0.05, "0.1"),
        (192.72, "192.7"),
        (359.95, "360.0"),
        (2.675, "2.7"),
        (0.04999, "0.0"),
        (41.15, "41.2"),
    ],
)
def test_round_half_up_like_php(value: float, expected: str) -> None:
    assert round_half_up(value) == expected


@pytest.mark.parametrize(
    ("when", "prefix"),
    [
        (utc(2025, 1, 1, 0, 0, 0), "20250101.00"),
        (utc(2025, 1, 1, 0, 14, 59), "20250101.00"),
        (utc(2025, 1, 1, 0, 15, 0), "20250101.01"),
        (utc(2025, 1, 1, 23, 59, 59), "20250101.95"),
        (datetime(2025, 1, 1, 20, 0, tzinfo=UTC) + timedelta(hours=5), "20250102.04"),
    ],
)
def test_slot_prefix(when: datetime, prefix: str) -> None:
    assert slot_prefix(when) == prefix


def test_slot_prefix_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        slot_prefix(datetime(2025, 1, 1))


@pytest.mark.parametrize(
    ("ra", "dec", "pixel"),
    [
        (250.42, 36.46, 40036),
        (315.4, 68.16, 7050),
        (6.02, -72.08, 191711),
        (0.0, 90.0, 0),
        # at the pole the four ring-1 pixels meet; RA picks one, as astropy-healpix does
        (123.0, 90.0, 1),
        (0.0, 0.0, 97536),
        (180.35, 30.0, 49152),
        (0.0, -90.0, 196604),
    ],
)
def test_healpix_known_pixels(ra: float, dec: float, pixel: int) -> None:
    assert healpix_ring_pixel(ra, dec) == pixel


def test_healpix_matches_astropy_healpix_on_random_points() -> None:
    rng = np.random.default_rng(42)
    ra = rng.uniform(0, 360, 5000)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 5000)))
    # include ring and cap boundaries
    ra = np.concatenate([ra, np.linspace(0, 359.9, 50), np.full(4, 45.0)])
    dec = np.concatenate(
        [dec, np.full(50, math.degrees(math.asin(2 / 3))), [89.99, -89.99, 41.8103, -41.8103]]
    )
    expected = HEALPix(nside=128, order="ring").lonlat_to_healpix(ra * u.deg, dec * u.deg)
    ours = np.array([healpix_ring_pixel(r, d) for r, d in zip(ra, dec, strict=True)])
    assert np.array_equal(ours, expected)


@pytest.mark.parametrize("nside", [1, 4, 16, 64, 128])
def test_healpix_array_version_equals_the_scalar_one(nside: int) -> None:
    rng = np.random.default_rng(7)
    ra = np.concatenate([rng.uniform(-20, 380, 20000), [0.0, 123.0, 180.35, 360.0, 45.0]])
    dec = np.concatenate(
        [np.degrees(np.arcsin(rng.uniform(-1, 1, 20000))), [0.0, 90.0, 30.0, -90.0, 89.99]]
    )
    scalar = [
        healpix_ring_pixel(r, d, nside) for r, d in zip(ra.tolist(), dec.tolist(), strict=True)
    ]
    assert healpix_ring_pixels(ra, dec, nside).tolist() == scalar


def test_circular_mean_across_zero() -> None:
    ra, dec = mean_pointing([359.9, 0.1, 359.95, 0.05], [10.0, 10.0, 10.0, 10.0])
    assert min(ra, 360 - ra) < 1e-6
    assert dec == pytest.approx(10.0, abs=1e-3)


def test_mean_of_identical_pointings_is_exact() -> None:
    assert mean_pointing([192.72] * 5, [41.12] * 5) == (192.72, 41.12)


# -- ground truth: a simulated night -------------------------------------------------------


def sequence(
    start: datetime,
    n: int,
    ra: float,
    dec: float,
    *,
    first_id: int,
    cadence_s: float = 11.3,
    drift_ra: float = 0.0,
    drift_dec: float = 0.0,
    **kwargs: object,
) -> list[FrameInfo]:
    return [
        FrameInfo(
            frame_id=first_id + i,
            date_obs=start + timedelta(seconds=i * cadence_s),
            ra_deg=(ra + i * drift_ra) % 360.0,
            dec_deg=dec + i * drift_dec,
            user_id=kwargs.get("user_id", 1),  # type: ignore[arg-type]
            telescope=kwargs.get("telescope", "S50_a"),  # type: ignore[arg-type]
            filter_name=kwargs.get("filter_name", "IRCUT"),  # type: ignore[arg-type]
            exptime_s=kwargs.get("exptime_s", 10.0),  # type: ignore[arg-type]
        )
        for i in range(n)
    ]


def ids(chunk_ids: tuple[int, ...]) -> set[int]:
    return set(chunk_ids)


def test_drift_across_rounding_boundary_stays_one_chunk() -> None:
    # NGC 188 near the pole: header RA swings across 0.1° boundaries (the 36-frames-7-jobs bug)
    frames = sequence(
        utc(2025, 10, 24, 18, 45),
        36,
        10.26,
        85.06,
        first_id=1,
        cadence_s=12.0,
        drift_ra=0.01,
        drift_dec=0.003,
    )
    chunks = group_frames(frames)
    assert len(chunks) == 1
    assert chunks[0].frame_count == 36
    assert chunks[0].chunk_key.startswith("20251024.75_")


def test_simulated_night_ground_truth() -> None:
    t0 = utc(2025, 3, 27, 1, 0)
    m94 = sequence(t0, 40, 192.72, 41.12, first_id=100, drift_ra=0.002)  # slot 04, 7.5 min
    # a second target interleaved in the same slot (another field, 30° away)
    m51 = sequence(t0 + timedelta(seconds=5), 20, 202.47, 47.2, first_id=200, cadence_s=20)
    # a pointing change after a pause: the target re-acquired 1° off (more than half
    # the field's width) is another field, same slot 05
    before_flip = sequence(utc(2025, 3, 27, 1, 16), 20, 192.72, 41.12, first_id=300)
    after_flip = sequence(utc(2025, 3, 27, 1, 21), 20, 193.9, 41.6, first_id=400)
    # filter change in slot 06
    ircut = sequence(utc(2025, 3, 27, 1, 30), 10, 192.72, 41.12, first_id=500)
    lp = sequence(utc(2025, 3, 27, 1, 33), 10, 192.72, 41.12, first_id=600, filter_name="LP")
    # straddling a slot boundary (01:44:30 -> 01:45:30): must split at 01:45:00
    straddle = sequence(
        utc(2025, 3, 27, 1, 44, 30), 10, 192.72, 41.12, first_id=700, cadence_s=6.0, exptime_s=5.0
    )
    # RA near 0/360 and Dec near the poles
    wrap = sequence(utc(2025, 3, 27, 2, 0), 10, 359.97, 5.0, first_id=800, drift_ra=0.01)
    north = sequence(utc(2025, 3, 27, 2, 15), 10, 0.0, 89.9, first_id=900, drift_ra=5.0)
    south = sequence(utc(2025, 3, 27, 2, 30), 10, 100.0, -89.95, first_id=1000, drift_ra=30.0)
    frames = m94 + m51 + before_flip + after_flip + ircut + lp + straddle + wrap + north + south
    chunks = group_frames(list(reversed(frames)), key_format="classic")
    got = {frozenset(c.frame_ids) for c in chunks}
    expected = {
        frozenset(f.frame_id for f in m94),
        frozenset(f.frame_id for f in m51),
        frozenset(f.frame_id for f in before_flip),
        frozenset(f.frame_id for f in after_flip),
        frozenset(f.frame_id for f in ircut),
        frozenset(f.frame_id for f in lp),
        frozenset(f.frame_id for f in straddle[:5]),
        frozenset(f.frame_id for f in straddle[5:]),
        frozenset(f.frame_id for f in wrap),
        frozenset(f.frame_id for f in north),
        frozenset(f.frame_id for f in south),
    }
    assert got == expected
    by_first = {c.frame_ids[0]: c for c in chunks}
    assert by_first[100].chunk_key == "20250327.04_192.8_+41.1"
    assert by_first[300].chunk_key == "20250327.05_192.7_+41.1"
    assert by_first[400].chunk_key == "20250327.05_193.9_+41.6"
    assert by_first[600].filter_name == "LP"
    assert by_first[700].chunk_key.startswith("20250327.06_")
    assert by_first[705].chunk_key.startswith("20250327.07_")
    wrap_chunk = by_first[800]
    assert wrap_chunk.ra_deg is not None and (wrap_chunk.ra_deg > 359 or wrap_chunk.ra_deg < 1)
    assert by_first[900].dec_deg == pytest.approx(89.9, abs=0.01)
    assert by_first[1000].chunk_key.endswith("_-90.0") or by_first[1000].chunk_key.endswith(
        "_-89.9"
    )
    # frames inside a chunk are in time order
    assert list(by_first[100].frame_ids) == sorted(by_first[100].frame_ids)


def flip_night(
    ra: float, dec: float, east_arcmin: float, north_arcmin: float, *, first_id: int = 1
) -> tuple[list[FrameInfo], list[FrameInfo]]:
    """20 frames, a 3-minute pause (the flip), then 20 frames offset on the sky.

    The offset is given on the sky (arc-minutes east and north), so near the pole it
    becomes a large RA difference, as it does in real headers.
    """
    before = sequence(utc(2025, 3, 27, 1, 15, 30), 20, ra, dec, first_id=first_id, drift_ra=0.001)
    ra_after = (ra + east_arcmin / 60.0 / math.cos(math.radians(dec))) % 360.0
    after = sequence(
        utc(2025, 3, 27, 1, 22), 20, ra_after, dec + north_arcmin / 60.0, first_id=first_id + 100
    )
    return before, after


@pytest.mark.parametrize("key_format", ["classic", "healpix"])
@pytest.mark.parametrize(
    ("ra", "dec", "east_arcmin", "north_arcmin"),
    [
        (192.72, 41.12, 3.0, -2.0),  # M 94, a typical re-acquisition after the flip
        (83.82, -5.39, -8.0, 6.0),  # M 42
        (192.72, 41.12, 0.0, 20.0),  # a poor one, still well inside the 44' x 77' field
        (359.98, 20.0, 4.0, 3.0),  # across RA 0/360
        (10.3, 85.1, 6.0, -5.0),  # NGC 188: 6' east is more than 1° of header RA
        (100.0, 89.9, 5.0, 0.0),  # at the pole RA may jump by tens of degrees
    ],
)
def test_meridian_flip_small_offset_stays_one_chunk(
    ra: float, dec: float, east_arcmin: float, north_arcmin: float, key_format: KeyFormat
) -> None:
    """The case users have: the same target re-acquired after a flip, arc-minutes off."""
    before, after = flip_night(ra, dec, east_arcmin, north_arcmin)
    plan = plan_chunks(before + after, key_format=key_format, min_frames=3)
    assert plan.skipped == ()
    (chunk,) = plan.chunks
    assert chunk.frame_ids == tuple(f.frame_id for f in before + after)
    assert chunk.chunk_key.startswith("20250327.05_")
    assert chunk.ra_deg is not None and chunk.dec_deg is not None
    # the key is named from the mean pointing, between the two pointings
    mean_ra, mean_dec = mean_pointing(
        [f.ra_deg for f in before + after],  # type: ignore[misc]
        [f.dec_deg for f in before + after],  # type: ignore[misc]
    )
    assert chunk.chunk_key == chunk_key(before[0].date_obs, mean_ra, mean_dec, key_format)


@pytest.mark.parametrize(
    ("ra", "dec", "east_arcmin", "north_arcmin"),
    [
        (192.72, 41.12, 90.0, 0.0),  # the next mosaic panel: another field
        (192.72, 41.12, 0.0, -60.0),
        (10.3, 85.1, 0.0, 75.0),  # near the pole
        (192.72, 41.12, 600.0, 360.0),  # another target altogether
    ],
)
def test_pointing_change_to_another_field_splits(
    ra: float, dec: float, east_arcmin: float, north_arcmin: float
) -> None:
    before, after = flip_night(ra, dec, east_arcmin, north_arcmin)
    chunks = group_frames(list(reversed(before + after)))
    assert {c.frame_ids for c in chunks} == {
        tuple(f.frame_id for f in before),
        tuple(f.frame_id for f in after),
    }
    assert len({c.chunk_key for c in chunks}) == 2


def test_separate_users_telescopes_and_exposures_split() -> None:
    t0 = utc(2025, 3, 27, 1, 0)
    frames = (
        sequence(t0, 5, 10.0, 10.0, first_id=1)
        + sequence(t0, 5, 10.0, 10.0, first_id=10, user_id=2)
        + sequence(t0, 5, 10.0, 10.0, first_id=20, telescope="S50_b")
        + sequence(t0, 5, 10.0, 10.0, first_id=30, exptime_s=20.0)
    )
    assert len(group_frames(frames)) == 4


def test_frames_without_position_form_their_own_chunk() -> None:
    t0 = utc(2025, 3, 27, 1, 0)
    located = sequence(t0, 4, 10.0, 10.0, first_id=1)
    unlocated = [
        FrameInfo(
            frame_id=50 + i,
            date_obs=t0 + timedelta(seconds=i),
            user_id=1,
            telescope="S50_a",
            filter_name="IRCUT",
            exptime_s=10.0,
        )
        for i in range(3)
    ]
    keys = sorted(c.chunk_key for c in group_frames(located + unlocated, key_format="classic"))
    assert keys == ["20250327.04_10.0_+10.0", "20250327.04_NOPOS"]


def test_minimum_frames_skips_with_reason() -> None:
    t0 = utc(2025, 3, 27, 1, 0)
    frames = sequence(t0, 5, 10.0, 10.0, first_id=1) + sequence(t0, 2, 50.0, 10.0, first_id=10)
    plan = plan_chunks(frames, min_frames=3)
    assert [c.frame_count for c in plan.chunks] == [5]
    assert len(plan.skipped) == 1
    assert plan.skipped[0].chunk.frame_ids == (10, 11)
    assert "only 2 frame(s); at least 3" in plan.skipped[0].reason


def test_minimum_total_exposure() -> None:
    frames = sequence(utc(2025, 3, 27, 1, 0), 3, 10.0, 10.0, first_id=1)
    assert plan_chunks(frames, min_frames=3, min_total_exptime_s=30).chunks
    plan = plan_chunks(frames, min_frames=3, min_total_exptime_s=240)
    assert not plan.chunks
    assert "total exposure 30 s is below the minimum of 240 s" in plan.skipped[0].reason


def test_healpix_format_for_a_group() -> None:
    frames = sequence(utc(2025, 3, 27, 1, 20), 5, 192.72, 41.12, first_id=1)
    (chunk,) = group_frames(frames, key_format="healpix")
    assert chunk.chunk_key == "20250327.05_HP033298"


def test_layering_chunking_imports_only_stdlib_and_numpy() -> None:
    import ast
    from pathlib import Path

    import crowdsky.ingest.chunking as module

    tree = ast.parse(Path(module.__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    assert {n for n in names if n.startswith("crowdsky")} <= {"crowdsky.healpix"}
    roots = {n.split(".")[0] for n in names if not n.startswith("crowdsky")}
    assert roots <= {
        "__future__",
        "math",
        "collections",
        "dataclasses",
        "datetime",
        "decimal",
        "typing",
        "numpy",
    }
