"""Stellarium's star catalogues as a colour catalogue: the format, and the real files.

The format tests write small catalogues; the real-file tests need Debian's
``stellarium-data`` and skip without it (fail under CROWDSKY_REQUIRE_ALL_BACKENDS=1).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from crowdsky.astrometry import errors
from crowdsky.astrometry.colours import (
    FILE_MAGIC,
    ICOSAHEDRON_CORNERS,
    ICOSAHEDRON_TRIANGLES,
    ColourCatalogue,
)


def star2(x0: int, x1: int, bv: int, mag: int) -> bytes:
    """A 10-byte Tycho-2 record: x0:20 x1:20 dx0:14 dx1:14 bV:7 mag:5 from bit 0."""
    value = (x0 & 0xFFFFF) | (x1 & 0xFFFFF) << 20 | bv << 68 | mag << 75
    return value.to_bytes(10, "little")


def write_catalogue(path: Path, zone_stars: dict[int, list[bytes]], kind: int = 1) -> Path:
    header = np.array([FILE_MAGIC, kind, 0, 4, 0, 9000, 1500, 30], dtype="<u4")
    sizes = np.array([len(zone_stars.get(z, [])) for z in range(20)], dtype="<u4")
    body = b"".join(b"".join(zone_stars.get(z, [])) for z in range(20))
    path.write_bytes(header.tobytes() + sizes.tobytes() + body)
    return path


def face_centre(face: int) -> tuple[float, float]:
    v = np.sum([ICOSAHEDRON_CORNERS[i] for i in ICOSAHEDRON_TRIANGLES[face]], axis=0)
    v /= np.linalg.norm(v)
    return math.degrees(math.atan2(v[1], v[0])) % 360, math.degrees(math.asin(v[2]))


def test_a_record_at_its_zone_centre_decodes_position_colour_and_magnitude(tmp_path: Path) -> None:
    path = write_catalogue(
        tmp_path / "stars_0_1v0_4.cat", {5: [star2(0, 0, 37, 10)], 12: [star2(0, 0, 127, 0)]}
    )
    catalogue = ColourCatalogue([path])
    assert len(catalogue) == 2
    ra, dec = face_centre(5)
    found = catalogue.cone(ra, dec, 0.01)
    assert len(found) == 1
    assert found.ra_deg[0] == pytest.approx(ra, abs=1e-9)
    assert found.dec_deg[0] == pytest.approx(dec, abs=1e-9)
    assert found.b_v[0] == pytest.approx(37 * 4 / 127 - 0.5)
    assert found.v_mag[0] == pytest.approx(9.0 + 10 * 1.5 / 30)
    assert len(catalogue.cone(*face_centre(12), 0.01)) == 1
    assert len(catalogue.cone(0.0, 90.0, 180.0)) == 2


def test_negative_offsets_move_a_star_the_other_way(tmp_path: Path) -> None:
    path = write_catalogue(
        tmp_path / "s.cat", {5: [star2(100_000, 0, 0, 0), star2(-100_000, 0, 0, 0)]}
    )
    found = ColourCatalogue([path]).cone(*face_centre(5), 20.0)
    assert len(found) == 2
    ra, _ = face_centre(5)
    # mirror images about the centre, along the east-west axis of the zone
    assert (found.ra_deg[0] - ra) == pytest.approx(-(found.ra_deg[1] - ra), rel=1e-3)
    assert found.dec_deg[0] == pytest.approx(found.dec_deg[1], abs=1e-6)


def test_damaged_files_are_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.cat"
    short.write_bytes(b"\x00" * 8)
    wrong = tmp_path / "wrong.cat"
    wrong.write_bytes(np.zeros(8 + 20, dtype="<u4").tobytes())
    cut = write_catalogue(tmp_path / "cut.cat", {1: [star2(0, 0, 0, 0)]})
    cut.write_bytes(cut.read_bytes()[:-3])
    for path, words in ((short, "too short"), (wrong, "not a little-endian"), (cut, "expected")):
        with pytest.raises(errors.CatalogueError, match=words):
            ColourCatalogue([path]).load()
    with pytest.raises(errors.CatalogueError):
        ColourCatalogue([])


@pytest.fixture(scope="module")
def stellarium(colour_files: list[Path]) -> ColourCatalogue:
    return ColourCatalogue(colour_files)


@pytest.mark.parametrize(
    ("name", "ra", "dec", "v", "b_v"),
    [
        ("Vega", 279.2347, 38.7837, 0.03, 0.00),
        ("Betelgeuse", 88.7929, 7.4071, 0.45, 1.50),
        ("18 Sco (solar twin)", 243.9053, -8.3694, 5.50, 0.65),
    ],
)
def test_known_stars_have_their_colours(
    stellarium: ColourCatalogue, name: str, ra: float, dec: float, v: float, b_v: float
) -> None:
    found = stellarium.cone(ra, dec, 5 / 3600)
    assert len(found) == 1, name
    assert found.b_v[0] == pytest.approx(b_v, abs=0.05)
    assert found.v_mag[0] == pytest.approx(v, abs=0.1)


def test_positions_agree_with_tycho2(stellarium: ColourCatalogue) -> None:
    from crowdsky.astrometry import find_index_files
    from crowdsky.astrometry.catalogue import IndexCatalogue

    index = next((p for p in find_index_files() if p.name.startswith("index-tycho2-07")), None)
    if index is None:
        pytest.skip("no Tycho-2 index file installed")
    stars = stellarium.cone(192.72, 41.12, 1.0)  # the M 94 field
    tycho = IndexCatalogue(index).cone(192.72, 41.12, 1.05)
    bright = stars.v_mag < 10.5
    assert bright.sum() >= 10
    a = np.column_stack([np.radians(stars.ra_deg), np.radians(stars.dec_deg)])[bright]
    b = np.column_stack([np.radians(tycho.ra_deg), np.radians(tycho.dec_deg)])
    cos = np.sin(a[:, None, 1]) * np.sin(b[None, :, 1]) + np.cos(a[:, None, 1]) * np.cos(
        b[None, :, 1]
    ) * np.cos(a[:, None, 0] - b[None, :, 0])
    nearest = np.degrees(np.arccos(np.clip(cos.max(axis=1), -1, 1))) * 3600
    assert np.median(nearest) < 0.1
    assert (nearest < 1.0).mean() >= 0.8  # a few Stellarium entries are not Tycho-2 stars
