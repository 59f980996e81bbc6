"""Star colours (B−V) from Stellarium's star catalogues, Debian's ``stellarium-data``.

The astrometry.net Tycho-2 index files carry one magnitude (V_T) and no colour; the
only offline catalogue with colours in the reachable registries is the one Stellarium
ships (Hipparcos and Tycho-2 stars to V 10.5, with V and B−V). :class:`ColourCatalogue`
reads its files once and decodes, per cone, only the zones that reach it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crowdsky.astrometry import errors

__all__ = ["DEFAULT_COLOUR_DIRS", "ColourCatalogue", "ColourStars", "find_colour_catalogue"]

DEFAULT_COLOUR_DIRS = (
    Path("/usr/share/stellarium/stars/default"),
    Path("/usr/local/share/stellarium/stars/default"),
)
CATALOGUE_FILES = (
    "stars_0_0v0_8.cat",
    "stars_1_0v0_8.cat",
    "stars_2_0v0_8.cat",
    "stars_3_1v0_4.cat",
)
FILE_MAGIC = 0x835F040A
HEADER_WORDS = 8
RECORD_BYTES = {0: 28, 1: 10}
"""Record type → bytes (0: Hipparcos/Tycho-2 "Star1", 1: Tycho-2 "Star2")."""
MAX_POSITION = {0: 0x7FFFFFFF, 1: (1 << 19) - 1}
MAX_LEVEL = 7


@dataclass(frozen=True, slots=True)
class ColourStars:
    """Catalogue stars with colours: J2000 positions (deg), V and B−V (mag)."""

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    v_mag: np.ndarray
    b_v: np.ndarray

    def __len__(self) -> int:
        return int(self.ra_deg.size)


def find_colour_catalogue(dirs: Sequence[Path] = DEFAULT_COLOUR_DIRS) -> list[Path]:
    """Stellarium catalogue files of the first folder that has any (else [])."""
    for folder in dirs:
        found = [Path(folder) / n for n in CATALOGUE_FILES if (Path(folder) / n).is_file()]
        if found:
            return found
    return []


class ColourCatalogue:
    """Stellarium's stars, read on first use and kept (thread-safe).

    Files: ``stars_{0,1,2}_0v0_8.cat`` (to V 9.0, 28-byte records) and
    ``stars_3_1v0_4.cat`` (V 9.0–10.5, 10-byte records) of
    ``/usr/share/stellarium/stars/default``. Format (Stellarium 0.22's "big star
    catalogue", read here from its description): eight little-endian uint32 (magic
    :data:`FILE_MAGIC`, record type, version, level, magnitude minimum, range and
    steps in millimag), the star count of each of the ``20 × 4**level`` triangles of
    a subdivided icosahedron, then the records zone by zone. A record's position is
    ``centre + x0·axis0 + x1·axis1`` of its triangle (J2000), ``centre`` the
    triangle's normalised corner sum, ``axis0 ∝ north × centre``, ``axis1 = centre ×
    axis0``, both scaled so the largest coordinate of the catalogue's triangles maps
    to the record's largest integer. B−V is ``bV · 4/127 − 0.5``, V is
    ``(mag_min + mag · mag_range / mag_steps) / 1000``.

    Parameters
    ----------
    files : sequence of Path
        Stellarium ``stars_*.cat`` files of record type 0 or 1.
    """

    name = "Stellarium 0.22 (Hipparcos, Tycho-2)"

    def __init__(self, files: Sequence[Path]) -> None:
        self.files = [Path(f) for f in files]
        if not self.files:
            raise errors.CatalogueError("no Stellarium star catalogue files")
        self._lock = threading.Lock()
        self._parts: list[_CatalogueFile] | None = None

    def load(self) -> None:
        """Read the files now (otherwise the first query does)."""
        with self._lock:
            if self._parts is None:
                self._parts = [_read_catalogue(path) for path in self.files]

    def __len__(self) -> int:
        self.load()
        assert self._parts is not None
        return sum(len(p.records) for p in self._parts)

    def cone(self, ra_deg: float, dec_deg: float, radius_deg: float) -> ColourStars:
        """Stars within ``radius_deg`` of a direction."""
        self.load()
        assert self._parts is not None
        ra, dec = math.radians(ra_deg), math.radians(dec_deg)
        centre = np.array(
            [math.cos(dec) * math.cos(ra), math.cos(dec) * math.sin(ra), math.sin(dec)]
        )
        found = [part.cone(centre, math.radians(radius_deg)) for part in self._parts]
        xyz = np.concatenate([f[0] for f in found])
        return ColourStars(
            np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360.0,
            np.degrees(np.arcsin(np.clip(xyz[:, 2], -1.0, 1.0))),
            np.concatenate([f[1] for f in found]),
            np.concatenate([f[2] for f in found]),
        )


@dataclass(frozen=True, slots=True)
class _CatalogueFile:
    """One catalogue file: its packed records and the geometry of its zones."""

    kind: int
    records: np.ndarray
    first: np.ndarray
    sizes: np.ndarray
    centre: np.ndarray
    axis0: np.ndarray
    axis1: np.ndarray
    zone_radius: float
    mag_min: float
    mag_step: float

    def cone(
        self, direction: np.ndarray, radius_rad: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit vectors, V and B−V of the stars within ``radius_rad`` of ``direction``."""
        reach = math.cos(min(math.pi, radius_rad + self.zone_radius))
        zones = np.flatnonzero((self.centre @ direction >= reach) & (self.sizes > 0))
        rows = np.concatenate(
            [np.arange(self.first[z], self.first[z] + self.sizes[z]) for z in zones]
            or [np.zeros(0, dtype=np.int64)]
        )
        zone = np.repeat(zones, self.sizes[zones])
        x0, x1, bv, mag = _decode(self.records[rows], self.kind)
        xyz = self.centre[zone] + x0[:, None] * self.axis0[zone] + x1[:, None] * self.axis1[zone]
        xyz /= np.linalg.norm(xyz, axis=1, keepdims=True)
        keep = xyz @ direction >= math.cos(radius_rad)
        v = (self.mag_min + mag[keep] * self.mag_step) / 1000.0
        return xyz[keep], v, bv[keep] * (4.0 / 127.0) - 0.5


def _read_catalogue(path: Path) -> _CatalogueFile:
    """The records and zone geometry of one catalogue file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise errors.CatalogueError(f"{path.name}: cannot read ({exc})") from exc
    if len(raw) < 4 * HEADER_WORDS:
        raise errors.CatalogueError(f"{path.name}: too short for a Stellarium catalogue")
    magic, kind, _major, _minor, level = (int(v) for v in np.frombuffer(raw, "<u4", 5))
    mag_min, mag_range, mag_steps = (int(v) for v in np.frombuffer(raw, "<i4", 3, offset=20))
    if magic != FILE_MAGIC:
        raise errors.CatalogueError(f"{path.name}: not a little-endian Stellarium catalogue")
    if kind not in RECORD_BYTES or not 0 <= level <= MAX_LEVEL or mag_steps <= 0:
        raise errors.CatalogueError(f"{path.name}: record type {kind} level {level} unsupported")
    n_zones = 20 * 4**level
    start = 4 * HEADER_WORDS
    sizes = np.frombuffer(raw, "<u4", n_zones, offset=start).astype(np.int64)
    start += 4 * n_zones
    size = RECORD_BYTES[kind]
    n = int(sizes.sum())
    if len(raw) != start + n * size:
        raise errors.CatalogueError(f"{path.name}: {len(raw)} bytes, expected {start + n * size}")
    records = np.frombuffer(raw, np.uint8, n * size, offset=start).reshape(n, size)
    centre, axis0, axis1, zone_radius = _zone_axes(level, MAX_POSITION[kind])
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return _CatalogueFile(
        kind, records, first, sizes, centre, axis0, axis1, zone_radius,
        float(mag_min), mag_range / mag_steps,
    )  # fmt: skip


def _decode(records: np.ndarray, kind: int) -> tuple[np.ndarray, ...]:
    """(x0, x1, bV index, magnitude index) of packed records (GCC bit fields, LE)."""
    if kind == 0:  # hip:24 componentIds:8 x0:i32 x1:i32 bV:u8 mag:u8 spInt:u16 dx0 dx1 plx
        x0 = records[:, 4:8].copy().view("<i4")[:, 0].astype(np.float64)
        x1 = records[:, 8:12].copy().view("<i4")[:, 0].astype(np.float64)
        return x0, x1, records[:, 12].astype(np.float64), records[:, 13].astype(np.float64)
    # x0:20 x1:20 dx0:14 dx1:14 bV:7 mag:5, from the least significant bit of 80
    low = records[:, :8].copy().view("<u8")[:, 0]
    high = records[:, 8:10].copy().view("<u2")[:, 0].astype(np.uint64)
    x0 = _signed(low & np.uint64(0xFFFFF), 20)
    x1 = _signed((low >> np.uint64(20)) & np.uint64(0xFFFFF), 20)
    bv = (high >> np.uint64(4)) & np.uint64(0x7F)
    mag = (high >> np.uint64(11)) & np.uint64(0x1F)
    return x0, x1, bv.astype(np.float64), mag.astype(np.float64)


def _signed(values: np.ndarray, bits: int) -> np.ndarray:
    out = values.astype(np.int64)
    return np.where(out >= 1 << (bits - 1), out - (1 << bits), out).astype(np.float64)


def _zone_axes(level: int, max_position: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Per triangle of the subdivided icosahedron: centre and the two scaled axes, and
    the largest centre-to-corner angle (radians)."""
    corners = np.array(_triangles(level))  # (zones, 3 corners, 3)
    centre = corners.sum(axis=1)
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    axis0 = np.cross(np.array([0.0, 0.0, 1.0]), centre)
    axis0 /= np.linalg.norm(axis0, axis=1, keepdims=True)
    axis1 = np.cross(centre, axis0)
    offset = corners - centre[:, None, :]
    mu0 = np.einsum("zck,zk->zc", offset, axis0)
    mu1 = np.einsum("zck,zk->zc", offset, axis1)
    f = 1.0 / np.sqrt(1.0 - mu0**2 - mu1**2)
    scale = float(max(np.max(np.abs(mu0) * f), np.max(np.abs(mu1) * f))) / max_position
    reach = float(np.arccos(np.clip(np.einsum("zck,zk->zc", corners, centre), -1, 1)).max())
    return centre, axis0 * scale, axis1 * scale, reach


_G = 0.5 * (1.0 + math.sqrt(5.0))
_B = 1.0 / math.sqrt(1.0 + _G * _G)
_A = _B * _G
ICOSAHEDRON_CORNERS = (
    (_A, -_B, 0.0), (_A, _B, 0.0), (-_A, _B, 0.0), (-_A, -_B, 0.0),
    (0.0, _A, -_B), (0.0, _A, _B), (0.0, -_A, _B), (0.0, -_A, -_B),
    (-_B, 0.0, _A), (_B, 0.0, _A), (_B, 0.0, -_A), (-_B, 0.0, -_A),
)  # fmt: skip
ICOSAHEDRON_TRIANGLES = (
    (1, 0, 10), (0, 1, 9), (0, 9, 6), (9, 8, 6), (0, 7, 10), (6, 7, 0), (7, 6, 3),
    (6, 8, 3), (11, 10, 7), (7, 3, 11), (3, 2, 11), (2, 3, 8), (10, 11, 4), (2, 4, 11),
    (5, 4, 2), (2, 8, 5), (4, 1, 10), (4, 5, 1), (5, 9, 1), (8, 9, 5),
)  # fmt: skip
"""Stellarium's icosahedron: corner vectors and the corner indices of its 20 faces,
in the order that numbers the zones (a zone's children are 4 i + 0..3)."""


def _triangles(level: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    corners = [np.array(c) for c in ICOSAHEDRON_CORNERS]
    faces = [(corners[a], corners[b], corners[c]) for a, b, c in ICOSAHEDRON_TRIANGLES]
    for _ in range(level):
        faces = [child for face in faces for child in _children(*face)]
    return faces


def _children(
    c0: np.ndarray, c1: np.ndarray, c2: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    e0, e1, e2 = (v / np.linalg.norm(v) for v in (c1 + c2, c2 + c0, c0 + c1))
    return (c0, e2, e1), (e2, c1, e0), (e1, e0, c2), (e0, e1, e2)
