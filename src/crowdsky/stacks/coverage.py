"""The sky coverage, kept per (tile, filter) in the transaction that changes a stack.

Aggregating every published stack per call is too slow at scale (docs/benchmarks.md),
so the answer lives in ``sky_coverage_cells``: session events collect the cells each
flush or ``UPDATE``/``DELETE`` on ``stacked_frames`` touches, and each is recomputed
from its own stacks before the change commits. A cell is created and locked before
it is aggregated, so the counts stay exact under concurrent writers. Writes that
bypass the session are not seen; :func:`rebuild_coverage` recomputes every cell.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    distinct,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, attributes

from crowdsky.db.models import SkyCoverageCell, StackedFrame

Cell = tuple[int, str]
_TABLE = StackedFrame.__table__
_CELLS = SkyCoverageCell.__table__
_FILTER = func.coalesce(StackedFrame.filter_name, "")
_PENDING_KEY = "crowdsky_coverage_cells"


def refresh_cells(connection: Connection, cells: Iterable[Cell]) -> None:
    """Recompute the given (tile, filter) cells from their published stacks.

    Runs in the caller's transaction. Cells are locked in ascending order, so two
    transactions touching overlapping cells queue instead of deadlocking.
    """
    for healpix, filter_name in sorted(set(cells)):
        _ensure_cell(connection, healpix, filter_name)
        connection.execute(
            select(_CELLS.c.healpix)
            .where(_CELLS.c.healpix == healpix, _CELLS.c.filter_name == filter_name)
            .with_for_update()
        )
        n, total, observers, first, last = connection.execute(
            select(
                func.count(),
                func.coalesce(func.sum(StackedFrame.total_exptime), 0.0),
                func.count(distinct(StackedFrame.user_id)),
                func.min(StackedFrame.date_obs_start),
                func.max(StackedFrame.date_obs_start),
            ).where(
                StackedFrame.healpix == healpix,
                filter_name == _FILTER,
                StackedFrame.is_private.is_(False),
            )
        ).one()
        where = (_CELLS.c.healpix == healpix) & (_CELLS.c.filter_name == filter_name)
        if n == 0:
            connection.execute(delete(_CELLS).where(where))
            continue
        connection.execute(
            update(_CELLS)
            .where(where)
            .values(
                n_stacks=n,
                total_exptime_s=float(total or 0.0),
                n_observers=observers,
                first_obs=first,
                last_obs=last,
                ecsv_row=ecsv_row(
                    healpix, filter_name, n, float(total or 0.0), observers, first, last
                ),
            )
        )


def ecsv_row(
    healpix: int,
    filter_name: str,
    n_stacks: int,
    total_exptime_s: float,
    n_observers: int,
    first_obs: datetime | None,
    last_obs: datetime | None,
) -> str:
    """One cell as its line of the ``sky_coverage`` ECSV (space-delimited, strings
    quoted, times UTC ISO 8601 with ``Z``), newline included."""
    name = filter_name.replace('"', "")
    return (
        f'{healpix} "{name}" {n_stacks} {total_exptime_s!r} {n_observers} '
        f'"{iso_utc(first_obs)}" "{iso_utc(last_obs)}"\n'
    )


def iso_utc(moment: datetime | None) -> str:
    """``2026-03-01T21:00:00Z``; ``''`` for none (a naive time is taken as UTC)."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat().replace("+00:00", "Z")


def fill_missing_lines(connection: Connection, *, batch_rows: int = 5000) -> int:
    """Write the ECSV line of every cell that has none (after the migration or a
    rebuild, which aggregate in SQL); returns how many were written."""
    c = _CELLS.c
    rows = connection.execute(
        select(
            c.healpix,
            c.filter_name,
            c.n_stacks,
            c.total_exptime_s,
            c.n_observers,
            c.first_obs,
            c.last_obs,
        ).where(c.ecsv_row.is_(None))
    ).all()
    statement = (
        update(_CELLS)
        .where(c.healpix == bindparam("key_healpix"), c.filter_name == bindparam("key_filter"))
        .values(ecsv_row=bindparam("line"))
    )
    for start in range(0, len(rows), batch_rows):
        connection.execute(
            statement,
            [
                {
                    "key_healpix": h,
                    "key_filter": f,
                    "line": ecsv_row(h, f, n, float(t or 0.0), o, a, b),
                }
                for h, f, n, t, o, a, b in rows[start : start + batch_rows]
            ],
        )
    return len(rows)


def rebuild_coverage(connection: Connection) -> int:
    """Recompute every cell from ``stacked_frames`` (after writes that bypassed the
    session); returns the number of cells."""
    connection.execute(delete(_CELLS))  # lines: fill_missing_lines, on the next read
    aggregate = (
        select(
            StackedFrame.healpix,
            _FILTER,
            func.count(),
            func.coalesce(func.sum(StackedFrame.total_exptime), 0.0),
            func.count(distinct(StackedFrame.user_id)),
            func.min(StackedFrame.date_obs_start),
            func.max(StackedFrame.date_obs_start),
        )
        .where(StackedFrame.is_private.is_(False), StackedFrame.healpix.is_not(None))
        .group_by(StackedFrame.healpix, _FILTER)
    )
    columns = [
        "healpix",
        "filter_name",
        "n_stacks",
        "total_exptime_s",
        "n_observers",
        "first_obs",
        "last_obs",
    ]
    connection.execute(insert(_CELLS).from_select(columns, aggregate))
    return int(connection.execute(select(func.count()).select_from(_CELLS)).scalar_one())


def _ensure_cell(connection: Connection, healpix: int, filter_name: str) -> None:
    """Insert an empty cell unless one exists (waiting for a concurrent inserter)."""
    values = {
        "healpix": healpix,
        "filter_name": filter_name,
        "n_stacks": 0,
        "total_exptime_s": 0.0,
        "n_observers": 0,
    }
    name = connection.dialect.name
    statement: Any
    if name == "postgresql":
        statement = postgresql.insert(_CELLS).values(values).on_conflict_do_nothing()
    elif name in ("mysql", "mariadb"):
        statement = mysql.insert(_CELLS).values(values).prefix_with("IGNORE")
    else:
        statement = sqlite.insert(_CELLS).values(values).on_conflict_do_nothing()
    connection.execute(statement)


def _cells_where(session: Session, where: Any) -> set[Cell]:
    query = select(StackedFrame.healpix, _FILTER).where(StackedFrame.healpix.is_not(None))
    if where is not None:
        query = query.where(where)
    rows = session.connection().execute(query.distinct())
    return {(int(h), str(f)) for h, f in rows}


def _is_stack_table(statement: Any) -> bool:
    table = getattr(statement, "table", None)
    return getattr(table, "name", None) == _TABLE.name


@event.listens_for(Session, "do_orm_execute")
def _on_statement(state: ORMExecuteState) -> Any:
    """``UPDATE``/``DELETE`` of stacks: refresh the cells they leave and enter."""
    if not (state.is_update or state.is_delete) or not _is_stack_table(state.statement):
        return None
    where = state.statement.whereclause
    cells = _cells_where(state.session, where)
    result = state.invoke_statement()
    if state.is_update:
        cells |= _cells_where(state.session, where)
    refresh_cells(state.session.connection(), cells)
    return result


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context: UOWTransaction, _instances: object) -> None:
    """Note the cells that stacks being changed or deleted are in now."""
    pending: set[Cell] = session.info.setdefault(_PENDING_KEY, set())
    for row in (*session.dirty, *session.deleted):
        if isinstance(row, StackedFrame):
            for healpix, name in _committed_cells(row):
                pending.add((healpix, name))


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: UOWTransaction) -> None:
    """Refresh the cells of the stacks the flush wrote, old places and new."""
    pending: set[Cell] = session.info.pop(_PENDING_KEY, set())
    for row in (*session.new, *session.dirty):
        if isinstance(row, StackedFrame) and row.healpix is not None:
            pending.add((int(row.healpix), row.filter_name or ""))
    if pending:
        refresh_cells(session.connection(), pending)


def _committed_cells(row: StackedFrame) -> set[Cell]:
    """The cells of a loaded stack as the database has it (before unflushed changes)."""
    found: set[Cell] = set()
    pixel = attributes.get_history(row, "healpix")
    names = attributes.get_history(row, "filter_name")
    for healpix in [*pixel.unchanged, *pixel.deleted] or [row.healpix]:
        for name in [*names.unchanged, *names.deleted] or [row.filter_name]:
            if healpix is not None:
                found.add((int(healpix), name or ""))
    return found
