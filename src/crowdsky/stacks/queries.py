"""Reads of the stack catalogue: an owner's list, one stack, a sky tile, the coverage.

Shared by the server's app/bot API and data API and by any later web front end.
Every function takes a session and runs its own read transaction; rows leave as
frozen :class:`StackRecord` values. Two audiences, two rules:

- an **owner** sees every one of their stacks, private or not;
- the **data API** sees the published stacks of every user: a private stack is
  answered exactly like an unknown id (``StackNotFound``), so ids reveal nothing.

An owner's list is produced in batches from one streaming cursor
(:func:`iter_user_stacks`), so a list of 100,000 stacks never sits in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, literal_column, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session, sessionmaker

from crowdsky.db.models import SkyCoverageCell, StackedFrame
from crowdsky.stacks import errors

#: Where a stack is on the sky, as every client sees it: the plate solution's centre when
#: the worker solved the stack, else the mean pointing the worker reported (the mount's
#: header position, off by up to a quarter degree). The reported columns stay as sent
#: (``complete_job`` compares them when a completion is repeated).
SKY_RA_DEG = func.coalesce(StackedFrame.wcs_ra_deg, StackedFrame.ra_deg)
SKY_DEC_DEG = func.coalesce(StackedFrame.wcs_dec_deg, StackedFrame.dec_deg)

#: Rows fetched from the cursor per batch of an owner's list.
STREAM_BATCH_ROWS = 2000
#: Most ids one ``download_frame`` list may name.
MAX_IDS_PER_REQUEST = 200
#: NSIDE 128: 12 * 128**2 pixels.
HEALPIX_PIXELS = 12 * 128 * 128
#: The coverage is joined on PostgreSQL in bands of this many pixels (48 bands).
COVERAGE_BAND_PIXELS = 4096


@dataclass(frozen=True, slots=True)
class StackRecord:
    """One stack as clients see it (a ``stacked_frames`` row)."""

    id: int
    job_id: int
    user_id: int
    chunk_key: str
    object_name: str | None
    telescope: str | None
    telescope_id: int | None
    filter_name: str | None
    eq_mode: int | None
    sqm: float | None
    healpix: int | None
    is_private: bool
    location_scrubbed: bool
    ucloud_path: str
    thumbnail_path: str | None
    n_frames_input: int
    n_frames_aligned: int
    n_stars_detected: int | None
    total_exptime: float | None
    date_obs_start: datetime | None
    date_obs_end: datetime | None
    ra_deg: float | None
    dec_deg: float | None
    file_size_bytes: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TileQuery:
    """Filters of a tile search; ``None`` means unset."""

    healpix: int
    start: datetime | None = None
    end: datetime | None = None
    filter_name: str | None = None
    eq_mode: int | None = None
    min_sqm: float | None = None
    min_exptime: float | None = None

    def validate(self) -> None:
        """Refuse an impossible query.

        Raises
        ------
        InvalidQuery
        """
        if not 0 <= self.healpix < HEALPIX_PIXELS:
            raise errors.InvalidQuery(
                f"healpix {self.healpix} is not an NSIDE 128 pixel (0-{HEALPIX_PIXELS - 1})"
            )
        if self.start is not None and self.end is not None and self.start > self.end:
            raise errors.InvalidQuery("start is after end")


@dataclass(frozen=True, slots=True)
class CoverageRow:
    """What the published stacks cover in one (tile, filter)."""

    healpix_ring: int
    filter_name: str
    n_stacks: int
    total_exptime_s: float
    n_observers: int
    first_obs: datetime | None
    last_obs: datetime | None


_COLUMNS = (
    StackedFrame.id,
    StackedFrame.stacking_job_id,
    StackedFrame.user_id,
    StackedFrame.chunk_key,
    StackedFrame.object_name,
    StackedFrame.telescope,
    StackedFrame.telescope_id,
    StackedFrame.filter_name,
    StackedFrame.eq_mode,
    StackedFrame.sqm,
    StackedFrame.healpix,
    StackedFrame.is_private,
    StackedFrame.location_scrubbed,
    StackedFrame.ucloud_path,
    StackedFrame.thumbnail_path,
    StackedFrame.n_frames_input,
    StackedFrame.n_frames_aligned,
    StackedFrame.n_stars_detected,
    StackedFrame.total_exptime,
    StackedFrame.date_obs_start,
    StackedFrame.date_obs_end,
    SKY_RA_DEG.label("ra_deg"),
    SKY_DEC_DEG.label("dec_deg"),
    StackedFrame.file_size_bytes,
    StackedFrame.created_at,
)


def _select() -> Select[Any]:
    return select(*_COLUMNS)


def _record(row: Sequence[Any]) -> StackRecord:
    return StackRecord(*row)


def iter_user_stacks(
    session_factory: sessionmaker[Session],
    *,
    user_id: int,
    object_name: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
    batch_rows: int = STREAM_BATCH_ROWS,
) -> Iterator[list[StackRecord]]:
    """A user's stacks, newest observation first, in batches from one cursor.

    Opens its own session (the iteration outlives a request handler's), reads in one
    transaction and closes when exhausted or closed.

    Parameters
    ----------
    object_name
        Only stacks of this object.
    since
        Only stacks recorded at or after this time (``created_at``), for clients that
        synchronise incrementally.
    limit, offset
        A page of the list; no limit gives the whole list, which is what the app,
        the bot and seestarpy expect.
    """
    query = _select().where(StackedFrame.user_id == user_id)
    if object_name is not None:
        query = query.where(StackedFrame.object_name == object_name)
    if since is not None:
        query = query.where(StackedFrame.created_at >= since)
    query = query.order_by(StackedFrame.date_obs_start.desc(), StackedFrame.id.desc())
    if limit is not None:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    with session_factory() as session, session.begin():
        result = session.execute(query.execution_options(yield_per=batch_rows))
        for partition in result.partitions():
            yield [_record(row) for row in partition]


def get_user_stack(session: Session, *, user_id: int, stack_id: int) -> StackRecord:
    """One of the user's own stacks.

    Raises
    ------
    StackNotFound
        Unknown id, or another user's stack.
    """
    with session.begin():
        row = session.execute(
            _select().where(StackedFrame.id == stack_id, StackedFrame.user_id == user_id)
        ).one_or_none()
    if row is None:
        raise errors.StackNotFound(f"stack {stack_id} does not exist")
    return _record(row)


def find_user_stack(
    session: Session, *, user_id: int, chunk_key: str, telescope_id: int | None = None
) -> StackRecord:
    """The user's newest stack of a chunk key (of one telescope, if given).

    Raises
    ------
    StackNotFound
    """
    query = _select().where(StackedFrame.user_id == user_id, StackedFrame.chunk_key == chunk_key)
    if telescope_id is not None:
        query = query.where(StackedFrame.telescope_id == telescope_id)
    with session.begin():
        row = session.execute(
            query.order_by(StackedFrame.created_at.desc(), StackedFrame.id.desc()).limit(1)
        ).one_or_none()
    if row is None:
        raise errors.StackNotFound(f"no stack with chunk key {chunk_key!r}")
    return _record(row)


def frames_by_healpix(session: Session, query: TileQuery) -> list[StackRecord]:
    """Published stacks of every user in one tile, by observation time.

    Raises
    ------
    InvalidQuery
    """
    query.validate()
    statement = _select().where(
        StackedFrame.healpix == query.healpix, StackedFrame.is_private.is_(False)
    )
    if query.start is not None:
        statement = statement.where(StackedFrame.date_obs_start >= query.start)
    if query.end is not None:
        statement = statement.where(StackedFrame.date_obs_start <= query.end)
    if query.filter_name is not None:
        statement = statement.where(StackedFrame.filter_name == query.filter_name)
    if query.eq_mode is not None:
        statement = statement.where(StackedFrame.eq_mode == query.eq_mode)
    if query.min_sqm is not None:
        statement = statement.where(StackedFrame.sqm >= query.min_sqm)
    if query.min_exptime is not None:
        statement = statement.where(StackedFrame.total_exptime >= query.min_exptime)
    statement = statement.order_by(StackedFrame.date_obs_start, StackedFrame.id)
    with session.begin():
        return [_record(row) for row in session.execute(statement)]


def get_published_stacks(session: Session, stack_ids: Sequence[int]) -> list[StackRecord]:
    """Published stacks by id, in the order asked (repeats collapsed).

    Raises
    ------
    InvalidQuery
        No ids, or more than :data:`MAX_IDS_PER_REQUEST`.
    StackNotFound
        Any id unknown or private; the message lists them.
    """
    wanted = list(dict.fromkeys(stack_ids))
    if not wanted:
        raise errors.InvalidQuery("no stack id given")
    if len(wanted) > MAX_IDS_PER_REQUEST:
        raise errors.InvalidQuery(
            f"{len(wanted)} ids given; at most {MAX_IDS_PER_REQUEST} per request"
        )
    with session.begin():
        rows = session.execute(
            _select().where(StackedFrame.id.in_(wanted), StackedFrame.is_private.is_(False))
        ).all()
    found = {row[0]: _record(row) for row in rows}
    missing = [i for i in wanted if i not in found]
    if missing:
        shown = ", ".join(str(i) for i in missing[:20])
        raise errors.StackNotFound(f"no such stack: {shown}")
    return [found[i] for i in wanted]


def iter_coverage_lines(
    session_factory: sessionmaker[Session], *, batch_rows: int = STREAM_BATCH_ROWS * 10
) -> Iterator[str]:
    """The ``sky_coverage`` ECSV's data lines by tile then filter, in batches (each a
    string of whole lines), streamed from the lines the kept cells carry.

    Cells without their line (filled by the migration or :func:`rebuild_coverage`)
    get it written first, once.
    """
    from crowdsky.stacks.coverage import fill_missing_lines

    with session_factory() as session, session.begin():
        fill_missing_lines(session.connection())
    cells = SkyCoverageCell.__table__.c
    with session_factory() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            # the server joins each band of tiles' lines: ~50 rows instead of ~200,000
            band = cells.healpix // COVERAGE_BAND_PIXELS
            joined = func.string_agg(
                cells.ecsv_row,
                aggregate_order_by(literal_column("''"), cells.healpix, cells.filter_name),
            )
            bands = select(joined).group_by(band).order_by(band)
            for (text,) in session.execute(bands.execution_options(yield_per=1)):
                yield text or ""
            return
        statement = select(cells.ecsv_row).order_by(cells.healpix, cells.filter_name)
        result = session.execute(statement.execution_options(yield_per=batch_rows))
        for partition in result.partitions():
            yield "".join(line for (line,) in partition if line is not None)


def sky_coverage(session: Session) -> list[CoverageRow]:
    """One row per (tile, filter) of the published stacks, by tile then filter.

    Read from the cells :mod:`crowdsky.stacks.coverage` keeps, not aggregated here.
    """
    cells = SkyCoverageCell.__table__.c
    statement = select(
        cells.healpix,
        cells.filter_name,
        cells.n_stacks,
        cells.total_exptime_s,
        cells.n_observers,
        cells.first_obs,
        cells.last_obs,
    ).order_by(cells.healpix, cells.filter_name)
    with session.begin():
        return [
            CoverageRow(int(p), str(f), int(n), float(t or 0.0), int(o), first, last)
            for p, f, n, t, o, first, last in session.execute(statement)
        ]
