"""Reference stars from astrometry.net index files: positions, magnitudes, identifiers.

The densest Tycho-2 index file present (scale 07 of Debian's
``astrometry-data-tycho2-07-littleendian``) is the catalogue for cross-matching and
photometry. Nothing is copied out of it: :class:`IndexCatalogue` memory-maps the star
table and the magnitudes, and keeps the answers for the last few fields on a wider
cone, because a session yields many stacks of the same field.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crowdsky.astrometry import errors

__all__ = ["CatalogueStars", "IndexCatalogue"]

MAG_COLUMN = "MAG_VT"
SCAN_ROWS = 262_144
"""Stars per chunk of a cone query's pass (3 MB of float32 at a time)."""
FIELD_CACHE_SIZE = 8
FIELD_CACHE_MARGIN_DEG = 0.5


@dataclass(frozen=True, slots=True)
class CatalogueStars:
    """Catalogue stars of one region.

    Attributes
    ----------
    ra_deg, dec_deg : ndarray
        float64 J2000 positions (the catalogue's epoch 2000 positions).
    mag : ndarray
        float64 V_T magnitude (NaN when the file has none).
    star_id : ndarray
        int64 row in the index file plus one.
    """

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    mag: np.ndarray
    star_id: np.ndarray

    def __len__(self) -> int:
        return int(self.ra_deg.size)


class IndexCatalogue:
    """The stars of one index file, memory-mapped on first use (thread-safe).

    The ``kdtree_data_stars`` table holds one row of three native-endian uint32 per
    star, the unit vector scaled into ``[lower, upper]`` by ``kdtree_range_stars``
    (lower bounds, upper bounds, tree units per data unit); the tag-along table
    carries one ``MAG_VT`` (Tycho-2 V_T) per star in the same order. The Tycho-2 index
    files carry no other magnitude and no Tycho identifier, so a star's catalogue id
    is its row plus one (0: unmatched); with ``INDEXID`` that names one star for good.
    A cone query is one chunked pass of dot products over the mapped integers; answers
    are kept for the last :data:`FIELD_CACHE_SIZE` fields on a cone
    :data:`FIELD_CACHE_MARGIN_DEG` wider than asked.

    Parameters
    ----------
    path : Path
        An astrometry.net index file with a star kd-tree and a tag-along table.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._raw: np.ndarray | None = None
        self._mag: np.ndarray | None = None
        self._lower = np.zeros(3)
        self._scale = 1.0
        self._fields: list[tuple[np.ndarray, float, CatalogueStars]] = []
        self.index_id: int | None = None
        self.name = self.path.name

    @property
    def nbytes(self) -> int:
        """Bytes of the cached fields (the mapped file is shared page cache)."""
        return sum(8 * 4 * len(stars) for _, _, stars in self._fields)

    @property
    def mapped_bytes(self) -> int:
        """Bytes of the file mapped (pages are read only where queries touch them)."""
        return sum(a.nbytes for a in (self._raw, self._mag) if a is not None)

    def load(self) -> None:
        """Map the star table now (otherwise the first query does)."""
        with self._lock:
            if self._raw is None:
                self._raw, self._mag, self._lower, self._scale, self.index_id = _map_index_stars(
                    self.path
                )

    def cone(self, ra_deg: float, dec_deg: float, radius_deg: float) -> CatalogueStars:
        """Stars within ``radius_deg`` of a direction, brightest first."""
        centre = _unit_vector(np.array([ra_deg]), np.array([dec_deg]))[0]
        with self._lock:
            cached = next(
                (
                    stars
                    for c, r, stars in self._fields
                    if math.degrees(math.acos(min(1.0, float(c @ centre)))) + radius_deg <= r
                ),
                None,
            )
        if cached is None:
            wide = radius_deg + FIELD_CACHE_MARGIN_DEG
            cached = self._scan(centre, wide)
            with self._lock:
                self._fields = [(centre, wide, cached), *self._fields][:FIELD_CACHE_SIZE]
        return _within(cached, centre, radius_deg)

    def _scan(self, centre: np.ndarray, radius_deg: float) -> CatalogueStars:
        """One pass over the mapped table: the stars within ``radius_deg``, brightest first."""
        self.load()
        assert self._raw is not None and self._mag is not None
        # x = raw / scale + lower, so x·c = raw·(c / scale) + lower·c: no converted copy
        weights = (centre / self._scale).astype(np.float32)
        # float32 dot products are exact enough to select (1e-7 ≈ 0.02″)
        threshold = math.cos(math.radians(radius_deg)) - float(self._lower @ centre) - 1e-6
        hits = []
        for start in range(0, len(self._raw), SCAN_ROWS):
            dots = self._raw[start : start + SCAN_ROWS].astype(np.float32) @ weights
            hits.append(np.flatnonzero(dots >= threshold) + start)
        inside = np.concatenate(hits) if hits else np.zeros(0, dtype=np.int64)
        xyz = self._raw[inside].astype(np.float64) / self._scale + self._lower
        xyz /= np.linalg.norm(xyz, axis=1, keepdims=True)
        ra = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360.0
        dec = np.degrees(np.arcsin(np.clip(xyz[:, 2], -1.0, 1.0)))
        mag = np.asarray(self._mag[inside], dtype=np.float64)
        order = np.argsort(np.where(np.isfinite(mag), mag, 99.0), kind="stable")
        return CatalogueStars(
            ra[order], dec[order], mag[order], (inside[order] + 1).astype(np.int64)
        )


def _within(stars: CatalogueStars, centre: np.ndarray, radius_deg: float) -> CatalogueStars:
    """The stars of a cached field inside a smaller cone (order kept: brightest first)."""
    dots = _unit_vector(stars.ra_deg, stars.dec_deg) @ centre
    keep = dots >= math.cos(math.radians(radius_deg)) - 1e-9
    return CatalogueStars(
        stars.ra_deg[keep], stars.dec_deg[keep], stars.mag[keep], stars.star_id[keep]
    )


def _unit_vector(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _map_index_stars(
    path: Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int | None]:
    """Memory maps of the star table (N × 3 uint32) and the magnitudes, the table's
    lower bounds and scale, and the INDEXID."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=True) as hdul:
            index_id = hdul[0].header.get("INDEXID")
            tables: dict[str, object] = {}
            for hdu in hdul[1:]:
                names = getattr(getattr(hdu, "columns", None), "names", None) or []
                for name in names:
                    tables.setdefault(name, hdu)
            data_hdu, range_hdu = tables.get("kdtree_data_stars"), tables.get("kdtree_range_stars")
            if data_hdu is None or range_hdu is None:
                raise errors.CatalogueError(f"{path.name}: no star kd-tree in this file")
            bounds = np.frombuffer(range_hdu.data.tobytes(), dtype="<f8")  # type: ignore[attr-defined]
            n_stars = int(data_hdu.header["NAXIS2"])  # type: ignore[attr-defined]
            if int(data_hdu.header["NAXIS1"]) != 12:  # type: ignore[attr-defined]
                raise errors.CatalogueError(f"{path.name}: star rows are not 3 × uint32")
            data_at = int(data_hdu.fileinfo()["datLoc"])  # type: ignore[attr-defined]
            mag_hdu = tables.get(MAG_COLUMN)
            mag_at = None
            if mag_hdu is not None:
                if int(mag_hdu.header["NAXIS1"]) != 4 or len(mag_hdu.columns) != 1:  # type: ignore[attr-defined]
                    raise errors.CatalogueError(f"{path.name}: {MAG_COLUMN} is not one float32")
                if int(mag_hdu.header["NAXIS2"]) != n_stars:  # type: ignore[attr-defined]
                    raise errors.CatalogueError(
                        f"{path.name}: {MAG_COLUMN} rows differ from the stars"
                    )
                mag_at = int(mag_hdu.fileinfo()["datLoc"])  # type: ignore[attr-defined]
        raw = np.memmap(path, dtype="<u4", mode="r", offset=data_at, shape=(n_stars, 3))
        if mag_at is not None:
            mag = np.memmap(path, dtype=">f4", mode="r", offset=mag_at, shape=(n_stars,))
        else:
            mag = np.full(n_stars, np.nan, dtype=np.float32)
    except errors.CatalogueError:
        raise
    except Exception as exc:  # astropy and numpy raise plain exceptions on damaged files
        raise errors.CatalogueError(f"{path.name}: cannot read stars ({exc})") from exc
    lower, scale = bounds[:3].astype(np.float64), float(bounds[6])
    return raw, mag, lower, scale, int(index_id) if isinstance(index_id, int) else None
