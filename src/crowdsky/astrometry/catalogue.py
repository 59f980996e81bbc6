"""Reference stars from astrometry.net index files: positions, magnitudes, identifiers.

An index file (``index-tycho2-07.littleendian.fits`` of Debian's
``astrometry-data-tycho2-07-littleendian``) holds its stars as a kd-tree: the
``kdtree_data_stars`` table has one row of three native-endian uint32 per star, the
unit vector scaled into ``[lower, upper]`` by ``kdtree_range_stars`` (lower bounds,
upper bounds, tree units per data unit), and the tag-along table carries one
``MAG_VT`` (Tycho-2 V_T magnitude) per star in the same order. The Tycho-2 index
files carry no other magnitude and no Tycho identifier, so a star's catalogue id
here is its row in the index file plus one (0 means unmatched); with the index id
(``INDEXID``, 4107 for scale 07) that names one star for good.

The densest file (scale 07: 1.87 million stars, Tycho-2 nearly complete after a 1″
de-duplication) is the one used for cross-matching and photometry. Its unit vectors
are kept as float32 (22 MB; 0.01″ resolution) once read, so a long-lived worker pays
the 0.1–0.2 s read once.
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
    """The stars of one index file, read lazily and kept in memory (thread-safe).

    Parameters
    ----------
    path : Path
        An astrometry.net index file with a star kd-tree and a tag-along table.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._xyz: np.ndarray | None = None
        self._mag: np.ndarray | None = None
        self.index_id: int | None = None
        self.name = self.path.name

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (0 before the first query)."""
        return sum(a.nbytes for a in (self._xyz, self._mag) if a is not None)

    def load(self) -> None:
        """Read the star table now (otherwise the first query does)."""
        with self._lock:
            if self._xyz is None:
                self._xyz, self._mag, self.index_id = _read_index_stars(self.path)

    def cone(self, ra_deg: float, dec_deg: float, radius_deg: float) -> CatalogueStars:
        """Stars within ``radius_deg`` of a direction, brightest first."""
        self.load()
        assert self._xyz is not None and self._mag is not None
        centre = _unit_vector(np.array([ra_deg]), np.array([dec_deg]))[0].astype(np.float32)
        cos_r = math.cos(math.radians(radius_deg))
        # dot products in float32 are exact enough to select (1e-7 ≈ 0.02″)
        inside = np.flatnonzero(self._xyz @ centre >= np.float32(cos_r) - np.float32(1e-6))
        xyz = self._xyz[inside].astype(np.float64)
        xyz /= np.linalg.norm(xyz, axis=1, keepdims=True)
        ra = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])) % 360.0
        dec = np.degrees(np.arcsin(np.clip(xyz[:, 2], -1.0, 1.0)))
        mag = self._mag[inside].astype(np.float64)
        order = np.argsort(np.where(np.isfinite(mag), mag, 99.0), kind="stable")
        return CatalogueStars(
            ra[order], dec[order], mag[order], (inside[order] + 1).astype(np.int64)
        )


def _unit_vector(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _read_index_stars(path: Path) -> tuple[np.ndarray, np.ndarray, int | None]:
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
            raw = np.frombuffer(data_hdu.data.tobytes(), dtype="<u4").reshape(-1, 3)  # type: ignore[attr-defined]
            lower, scale = bounds[:3], bounds[6]
            xyz = (raw.astype(np.float64) / scale + lower).astype(np.float32)
            mag_hdu = tables.get(MAG_COLUMN)
            if mag_hdu is not None:
                mag = np.asarray(mag_hdu.data[MAG_COLUMN], dtype=np.float32)  # type: ignore[attr-defined]
            else:
                mag = np.full(len(xyz), np.nan, dtype=np.float32)
    except errors.CatalogueError:
        raise
    except Exception as exc:  # astropy raises plain exceptions on damaged files
        raise errors.CatalogueError(f"{path.name}: cannot read stars ({exc})") from exc
    if mag.size != len(xyz):
        raise errors.CatalogueError(f"{path.name}: {MAG_COLUMN} rows differ from the stars")
    return xyz, mag, int(index_id) if isinstance(index_id, int) else None
