"""Tiny synthetic Seestar-like FITS frames for intake tests (header values on demand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

DEFAULT_START = datetime(2025, 3, 27, 1, 20, 15, 500000, tzinfo=UTC)
_UNSET: Any = object()


def frame_header(
    *,
    date_obs: datetime | str | None = DEFAULT_START,
    ra: Any = 192.72,
    dec: Any = 41.12,
    exptime: float | None = 10.0,
    filter_name: str | None = "IRCUT",
    telescop: str | None = "S50_test",
    object_name: str | None = "M 94",
    bayerpat: str | None = "GRBG",
    instrume: str | None = "Seestar S50",
    site: tuple[float, float] | None = (33.0, -80.0),
    extra: dict[str, Any] | None = None,
) -> fits.Header:
    """A Seestar raw header; ``None`` leaves a keyword out."""
    header = fits.Header()
    values: dict[str, Any] = {
        "DATE-OBS": date_obs.isoformat().replace("+00:00", "")
        if isinstance(date_obs, datetime)
        else date_obs,
        "EXPTIME": exptime,
        "RA": ra,
        "DEC": dec,
        "OBJECT": object_name,
        "FILTER": filter_name,
        "TELESCOP": telescop,
        "INSTRUME": instrume,
        "BAYERPAT": bayerpat,
        "GAIN": 80,
        "CCD-TEMP": 25.1,
        "EQMODE": 0,
    }
    if site is not None:
        values["SITELAT"], values["SITELONG"] = site
    values.update(extra or {})
    for key, value in values.items():
        if value is not None:
            header[key] = value
    return header


def write_frame(
    path: Path, *, shape: tuple[int, int] = (8, 12), seed: int = 0, **header_values: Any
) -> Path:
    """Write a small uint16 frame with a Seestar-like header; returns the path."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 60000, size=shape, dtype=np.uint16)
    hdu = fits.PrimaryHDU(data=data, header=frame_header(**header_values))
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu.writeto(path, overwrite=True)
    return path


def write_sequence(
    folder: Path,
    n: int,
    *,
    start: datetime = DEFAULT_START,
    cadence_s: float = 11.3,
    prefix: str = "Light",
    seed: int = 0,
    **header_values: Any,
) -> list[Path]:
    """``n`` frames ``cadence_s`` apart, each with different pixels (distinct hashes)."""
    paths = []
    for i in range(n):
        moment = start + timedelta(seconds=i * cadence_s)
        paths.append(
            write_frame(
                folder / f"{prefix}_{i:03d}.fit",
                seed=seed * 1000 + i,
                date_obs=moment,
                **header_values,
            )
        )
    return paths
