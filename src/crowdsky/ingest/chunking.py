"""Group raw frames into stacking chunks and name them (pure: stdlib and numpy only).

A chunk is what one job stacks: frames of one user, telescope, filter and exposure
in one clock-aligned 15-minute UTC slot, of one field. Frames are grouped exactly by
those keys, then joined on the sky when closer than ``separation_deg`` (single
linkage), so a drifting field stays one chunk however its rounded coordinates fall;
each chunk is named once, from its circular-mean pointing.

Key formats (both with the original's ``YYYYMMDD.CC`` prefix, CC = slot 00-95):
``classic`` ``YYYYMMDD.CC_RA_±DEC`` (0.1°, rounded half-up as the original's PHP did)
and ``healpix`` (default) ``YYYYMMDD.CC_HPnnnnnn``, the NSIDE 128 RING pixel computed
byte-identically to seestarpy's, so keys made on the telescope match ours. Frames
without coordinates get ``YYYYMMDD.CC_NOPOS``, which no real position can collide with.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

import numpy as np

from crowdsky.healpix import healpix_ring_pixel

KeyFormat = Literal["classic", "healpix"]

SLOT_SECONDS = 900
#: Frames closer than this are one field; the S50 field is about 0.73° × 1.29°.
DEFAULT_SEPARATION_DEG = 0.5
UNKNOWN_POSITION = "NOPOS"
#: Mean pointings are rounded to this many decimals before formatting, so that the
#: float noise of the unit-vector mean cannot flip a half-up rounding.
MEAN_DECIMALS = 9


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """The header facts chunking needs about one frame."""

    frame_id: int
    date_obs: datetime
    ra_deg: float | None = None
    dec_deg: float | None = None
    user_id: int = 0
    telescope: str | None = None
    filter_name: str | None = None
    exptime_s: float | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """One planned stacking job."""

    chunk_key: str
    frame_ids: tuple[int, ...]
    user_id: int
    telescope: str | None
    filter_name: str | None
    exptime_s: float | None
    slot_start: datetime
    ra_deg: float | None
    dec_deg: float | None

    @property
    def frame_count(self) -> int:
        """Number of frames in the chunk."""
        return len(self.frame_ids)

    @property
    def total_exptime_s(self) -> float:
        """Summed exposure (0 when the exposure is unknown)."""
        return (self.exptime_s or 0.0) * len(self.frame_ids)


@dataclass(frozen=True, slots=True)
class SkippedChunk:
    """A group that gets no job, and why (never dropped silently)."""

    chunk: Chunk
    reason: str


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """The outcome of grouping: chunks to queue and groups skipped with a reason."""

    chunks: tuple[Chunk, ...]
    skipped: tuple[SkippedChunk, ...]


def plan_chunks(
    frames: Iterable[FrameInfo],
    *,
    key_format: KeyFormat = "healpix",
    min_frames: int = 1,
    min_total_exptime_s: float = 0.0,
    separation_deg: float = DEFAULT_SEPARATION_DEG,
) -> ChunkPlan:
    """Group frames into chunks and drop (with a reason) the ones too small to stack.

    Parameters
    ----------
    frames
        The frames of one finalize (any order).
    key_format : {'classic', 'healpix'}
        How chunk keys are written.
    min_frames
        Groups with fewer frames are skipped.
    min_total_exptime_s
        Groups whose summed exposure is below this are skipped (0 disables).
    separation_deg
        Frames closer than this on the sky belong to one field.

    Returns
    -------
    ChunkPlan
        Chunks ordered by slot, then key; frame ids inside a chunk in DATE-OBS order.
    """
    chunks = group_frames(frames, key_format=key_format, separation_deg=separation_deg)
    keep: list[Chunk] = []
    skipped: list[SkippedChunk] = []
    for chunk in chunks:
        if chunk.frame_count < min_frames:
            skipped.append(
                SkippedChunk(
                    chunk,
                    f"only {chunk.frame_count} frame(s); at least {min_frames} are needed",
                )
            )
        elif min_total_exptime_s > 0 and chunk.total_exptime_s < min_total_exptime_s:
            skipped.append(
                SkippedChunk(
                    chunk,
                    f"total exposure {chunk.total_exptime_s:g} s is below "
                    f"the minimum of {min_total_exptime_s:g} s",
                )
            )
        else:
            keep.append(chunk)
    return ChunkPlan(tuple(keep), tuple(skipped))


def group_frames(
    frames: Iterable[FrameInfo],
    *,
    key_format: KeyFormat = "healpix",
    separation_deg: float = DEFAULT_SEPARATION_DEG,
) -> list[Chunk]:
    """All chunks of the frames, without any minimum applied."""
    groups: dict[Hashable, list[FrameInfo]] = defaultdict(list)
    for frame in frames:
        groups[_group_identity(frame)].append(frame)
    chunks: list[Chunk] = []
    for members in groups.values():
        members.sort(key=lambda f: (f.date_obs, f.frame_id))
        for cluster in _cluster_by_pointing(members, separation_deg):
            chunks.append(_make_chunk(cluster, key_format))
    chunks.sort(key=lambda c: (c.slot_start, c.chunk_key, c.telescope or "", c.frame_ids))
    return chunks


def slot_prefix(date_obs: datetime) -> str:
    """``YYYYMMDD.CC``: the UTC date and the index of its 15-minute slot (00–95)."""
    utc = _as_utc(date_obs)
    seconds = utc.hour * 3600 + utc.minute * 60 + utc.second
    return f"{utc:%Y%m%d}.{seconds // SLOT_SECONDS:02d}"


def slot_start(date_obs: datetime) -> datetime:
    """Start of the 15-minute UTC slot holding ``date_obs``."""
    utc = _as_utc(date_obs)
    minute = utc.minute - utc.minute % 15
    return utc.replace(minute=minute, second=0, microsecond=0)


def chunk_key(
    date_obs: datetime,
    ra_deg: float | None,
    dec_deg: float | None,
    key_format: KeyFormat = "healpix",
) -> str:
    """The chunk key of one pointing at one time.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> chunk_key(datetime(2025, 1, 15, 19, 32, 10, tzinfo=UTC), 83.6, 22.0)
    '20250115.78_HP061302'
    >>> chunk_key(datetime(2025, 1, 15, 19, 32, 10, tzinfo=UTC), 83.6, 22.0, "classic")
    '20250115.78_83.6_+22.0'
    """
    prefix = slot_prefix(date_obs)
    if ra_deg is None or dec_deg is None:
        return f"{prefix}_{UNKNOWN_POSITION}"
    if key_format == "healpix":
        return f"{prefix}_HP{healpix_ring_pixel(ra_deg, dec_deg):06d}"
    if key_format != "classic":
        raise ValueError(f"unknown chunk key format {key_format!r}")
    sign = "+" if dec_deg >= 0 else "-"
    return f"{prefix}_{round_half_up(ra_deg)}_{sign}{round_half_up(abs(dec_deg))}"


def round_half_up(value: float, places: int = 1) -> str:
    """Round the decimal form of ``value`` half away from zero, as PHP's ``round``.

    Python's ``round`` works on the binary value with half-to-even (10.25 -> 10.2);
    the original printed 10.3.

    Examples
    --------
    >>> round_half_up(10.25)
    '10.3'
    >>> round_half_up(359.97)
    '360.0'
    """
    quantum = Decimal(1).scaleb(-places)
    rounded = Decimal(repr(float(value))).quantize(quantum, rounding=ROUND_HALF_UP)
    return f"{rounded:.{places}f}"


def mean_pointing(ra_deg: Sequence[float], dec_deg: Sequence[float]) -> tuple[float, float]:
    """Circular mean of directions (mean unit vector), correct across RA 0/360.

    Identical inputs return themselves exactly, so a single pointing keeps its
    header value to the last digit.
    """
    if len(set(zip(ra_deg, dec_deg, strict=True))) == 1:
        return float(ra_deg[0]), float(dec_deg[0])
    vectors = _unit_vectors(np.asarray(ra_deg, float), np.asarray(dec_deg, float))
    x, y, z = vectors.sum(axis=0)
    ra = math.degrees(math.atan2(y, x)) % 360.0
    dec = math.degrees(math.atan2(z, math.hypot(x, y)))
    return round(ra, MEAN_DECIMALS) % 360.0, round(dec, MEAN_DECIMALS)


def _group_identity(frame: FrameInfo) -> Hashable:
    exptime = None if frame.exptime_s is None else round(frame.exptime_s, 6)
    return (
        frame.user_id,
        frame.telescope or "",
        frame.filter_name or "",
        exptime,
        slot_prefix(frame.date_obs),
    )


def _cluster_by_pointing(frames: list[FrameInfo], separation_deg: float) -> list[list[FrameInfo]]:
    """Single-linkage clusters (union-find) of frames within ``separation_deg``.

    Frames without coordinates form one cluster of their own.
    """
    located = [f for f in frames if f.ra_deg is not None and f.dec_deg is not None]
    unlocated = [f for f in frames if f.ra_deg is None or f.dec_deg is None]
    clusters: list[list[FrameInfo]] = []
    if located:
        ra = np.array([f.ra_deg for f in located], float)
        dec = np.array([f.dec_deg for f in located], float)
        vectors = _unit_vectors(ra, dec)
        cos_limit = math.cos(math.radians(separation_deg))
        close = vectors @ vectors.T >= cos_limit
        parent = list(range(len(located)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i, j in zip(*np.nonzero(np.triu(close, k=1)), strict=True):
            root_i, root_j = find(int(i)), find(int(j))
            if root_i != root_j:
                parent[max(root_i, root_j)] = min(root_i, root_j)
        by_root: dict[int, list[FrameInfo]] = defaultdict(list)
        for index, frame in enumerate(located):
            by_root[find(index)].append(frame)
        clusters.extend(by_root.values())
    if unlocated:
        clusters.append(unlocated)
    return clusters


def _make_chunk(frames: list[FrameInfo], key_format: KeyFormat) -> Chunk:
    first = frames[0]
    located = [f for f in frames if f.ra_deg is not None and f.dec_deg is not None]
    ra: float | None = None
    dec: float | None = None
    if located:
        ra, dec = mean_pointing(
            [f.ra_deg for f in located],  # type: ignore[misc]
            [f.dec_deg for f in located],  # type: ignore[misc]
        )
    return Chunk(
        chunk_key=chunk_key(first.date_obs, ra, dec, key_format),
        frame_ids=tuple(f.frame_id for f in frames),
        user_id=first.user_id,
        telescope=first.telescope,
        filter_name=first.filter_name,
        exptime_s=first.exptime_s,
        slot_start=slot_start(first.date_obs),
        ra_deg=ra,
        dec_deg=dec,
    )


def _unit_vectors(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra = np.radians(ra_deg)
    dec = np.radians(dec_deg)
    cos_dec = np.cos(dec)
    return np.stack([cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)], axis=1)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: chunking needs aware UTC times")
    return moment.astimezone(UTC)
